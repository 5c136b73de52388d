"""Where tasks come from: the built-in synthetic suite, a SuperNI directory, or a HF dataset.

Every source ends as a SuperNI task directory on disk, so the rest of ablate reads one format.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from ablate.errors import AblateError, first_line

SYNTHETIC = "synthetic"
HF_PREFIX = "hf:"
HF_CONVERSION_VERSION = 2  # 2: positive and negative examples kept; part of an hf: source's fingerprint
# Files of a `save_to_disk` folder that carry the dataset's own fingerprint (`_fingerprint`) and schema.
_HF_METADATA = {"state.json", "dataset_info.json", "dataset_dict.json"}


def source_fingerprint(source: str, synthetic_seed: int) -> str:
    """A content fingerprint of a data source, independent of where it lives on disk: what a cell
    id and the conversion cache are keyed on, so changed data never reads a stale cache."""
    if source == SYNTHETIC:
        from ablate.data.synthetic import SUITE_VERSION

        return hashlib.sha256(f"synthetic:{SUITE_VERSION}:{synthetic_seed}".encode()).hexdigest()[:16]
    if source.startswith(HF_PREFIX):
        return hf_fingerprint(source[len(HF_PREFIX):])
    from ablate.data.tasks import fingerprint_task_dir

    return fingerprint_task_dir(source)


def hf_fingerprint(name: str) -> str:
    """The content fingerprint of an `hf:` dataset. A local folder (data files, or `save_to_disk`):
    every file's relative path and size, and the whole text of the metadata files `datasets`
    writes (state.json holds the dataset's own `_fingerprint`), as task directories are
    fingerprinted by file names and sizes. A hub dataset: the fingerprints `datasets` gives its
    splits as loaded (from its cache when offline), which change with the dataset's revision."""
    digest = hashlib.sha256(f"hf-conversion:{HF_CONVERSION_VERSION}\n".encode())
    folder = Path(name)
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            relative = path.relative_to(folder).as_posix()
            digest.update(f"{relative}:{path.stat().st_size}\n".encode())
            if path.name in _HF_METADATA:
                digest.update(path.read_bytes())
    else:
        for split_name, rows in sorted(load_hf_dataset(name).items()):
            digest.update(f"{split_name}:{getattr(rows, '_fingerprint', '')}:{len(rows)}\n".encode())
    return digest.hexdigest()[:16]


def cached_task_dir(source: str, synthetic_seed: int, cache_dir: Path) -> Path | None:
    """Where a generated (synthetic) or converted (hf:) source's task directory is cached, or None
    for a task directory, which is read where it is."""
    if source == SYNTHETIC:
        from ablate.data.synthetic import SUITE_VERSION

        return cache_dir / f"synthetic-v{SUITE_VERSION}-seed{synthetic_seed}"
    if source.startswith(HF_PREFIX):
        return cache_dir / f"hf-{source_fingerprint(source, synthetic_seed)}"
    return None


def check_source(source: str) -> None:
    """Fail early on a source that cannot work (a missing directory)."""
    if source == SYNTHETIC or source.startswith(HF_PREFIX):
        return
    from ablate.data.tasks import check_task_dir

    try:
        check_task_dir(source)
    except AblateError as exc:
        raise AblateError(exc.message, file=exc.file, field="data.source", fix=exc.fix) from None


def _atomic_dir(target: Path, fill) -> Path:
    """Create `target` by filling a temporary sibling and renaming it, so no half-written folder is ever seen."""
    if target.is_dir():
        return target
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(scratch)
        os.replace(scratch, target)
    except OSError:
        if not target.is_dir():  # another process may have won the race
            raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
        if not target.is_dir():  # it failed: leave no empty folders of ours behind
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
    return target


def resolve_task_dir(source: str, synthetic_seed: int, cache_dir: Path) -> Path:
    """The task directory of a source, generating or converting it into `cache_dir` when needed."""
    target = cached_task_dir(source, synthetic_seed, cache_dir)
    if source == SYNTHETIC:
        from ablate.data.synthetic import write_suite

        return _atomic_dir(target, lambda d: write_suite(d, synthetic_seed))
    if source.startswith(HF_PREFIX):
        return _atomic_dir(target, lambda d: convert_hf_dataset(source[len(HF_PREFIX):], d))
    return Path(source)


def load_hf_dataset(name: str) -> dict:
    """The splits of a hub dataset, a folder of data files, or a folder written by `save_to_disk`."""
    from datasets import load_dataset, load_from_disk

    saved = Path(name)
    try:
        if (saved / "dataset_dict.json").is_file() or (saved / "dataset_info.json").is_file():
            dataset = load_from_disk(str(saved))  # a folder written by `save_to_disk`
            return dict(dataset.items()) if hasattr(dataset, "items") else {"train": dataset}
        return dict(load_dataset(name).items())  # a hub dataset or a folder of data files
    except Exception as exc:  # datasets raises many kinds (offline, not found, bad files); all mean "cannot load"
        reason = first_line(exc)
        raise AblateError(f"cannot load the dataset '{name}' ({type(exc).__name__}: {reason}).", file=f"hf:{name}",
                          field="data.source",
                          fix="give a hub dataset name (downloaded beforehand when HF_HUB_OFFLINE=1), a folder of "
                              "data files, or a folder written by `save_to_disk`.") from None


# Columns of demonstrations: SuperNI's task-file key, or its snake-case form.
EXAMPLE_COLUMNS = {"Positive Examples": ("positive_examples", "Positive Examples"),
                   "Negative Examples": ("negative_examples", "Negative Examples")}


def _examples(row: dict, columns: tuple[str, ...], name: str) -> list[dict]:
    """A row's demonstrations as task-file examples ({input, output, explanation?}); [] when the
    row has no such column or it is empty."""
    raw = next((row[c] for c in columns if row.get(c)), None) or []
    if isinstance(raw, dict) and "input" in raw:  # a column of structs of lists, as pyarrow may store them
        raw = [dict(zip(raw, values)) for values in zip(*raw.values())]
    examples = []
    for example in raw:
        if not isinstance(example, dict) or not isinstance(example.get("input"), str) \
                or not isinstance(example.get("output"), str):
            raise AblateError(f"a row's '{columns[0]}' holds an example without an input and an output string.",
                              file=f"hf:{name}", field=columns[0],
                              fix="give each example an 'input' and an 'output' string (and optionally 'explanation').")
        examples.append({k: example[k] for k in ("input", "output", "explanation")
                         if isinstance(example.get(k), str)})
    return examples


def convert_hf_dataset(name: str, out_dir: Path) -> None:
    """Write a HF dataset of SuperNI rows as a task directory.

    Rows need a task name (`task_name`), `id`, `definition`, an input (`inputs`/`input`),
    references (`targets`/`output`, a string or a list) and optionally `category`, a `split`
    column ('train'/'test'; the dataset's own splits are used otherwise) and demonstrations:
    `positive_examples` / `negative_examples` (or SuperNI's `Positive Examples` / `Negative
    Examples`), each a list of {input, output, explanation}, taken from the first row of a task
    that has them. `name` is a hub dataset, a folder of data files, or a folder written by
    `datasets`' `save_to_disk`.
    """
    dataset = load_hf_dataset(name)
    tasks: dict[str, dict] = {}
    split_of: dict[str, set[str]] = defaultdict(set)
    for split_name, rows in dataset.items():
        for row in rows:
            task_name = row.get("task_name") or row.get("Task")
            if not task_name:
                raise AblateError("a row has no task_name.", file=f"hf:{name}", field="task_name",
                                  fix="use a dataset with SuperNI rows (task_name, id, definition, inputs, targets).")
            references = row.get("targets", row.get("output"))
            references = [references] if isinstance(references, str) else list(references)
            task = tasks.setdefault(task_name, {
                "Definition": [row.get("definition", "")],
                "Categories": [row.get("category") or "Misc."],
                "Positive Examples": [], "Negative Examples": [], "Instances": []})
            for key, columns in EXAMPLE_COLUMNS.items():
                if not task[key]:
                    task[key] = _examples(row, columns, name)
            task["Instances"].append({"id": str(row["id"]), "input": row.get("inputs", row.get("input", "")),
                                      "output": references})
            split_of[row.get("split") or split_name].add(task_name)
    (out_dir / "tasks").mkdir(parents=True)
    for task_name, task in tasks.items():
        (out_dir / "tasks" / f"{task_name}.json").write_text(json.dumps(task, ensure_ascii=False))
    split_dir = out_dir / "splits" / "default"
    split_dir.mkdir(parents=True)
    test = sorted(split_of.get("test", set()))
    train = sorted(set(tasks) - set(test))
    (split_dir / "train_tasks.txt").write_text("\n".join(train) + "\n")
    (split_dir / "test_tasks.txt").write_text("\n".join(test) + "\n")
