"""The task index of a task directory: per task, its categories, instance count, file size, content
hash and answer options (ablate.data.options), or the error its file gives. Selection, validation,
planning and the report read the index, never the task files, so a 1,600-task SuperNI release
costs one pass over its files.

The index is built by reading each task file once, in turn (memory bounded by the largest file),
and saved as `<index_dir>/<fingerprint>.json` where a caller persists it (a sweep and its cells: in
their cache folder); the fingerprint (task file names and sizes, split file contents) changes when
the directory does, so a stale index is never read. A persisted index converts each task file it
reads into the columnar store beside it (ablate/data/columnar.py), once per file content.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ablate.data.tasks import check_instances, parse_task
from ablate.errors import AblateError

INDEX_VERSION = 3  # 2: answer options (options, options_given); 3: example counts too


@dataclass(frozen=True)
class IndexEntry:
    categories: tuple[str, ...] = ()
    instances: int = 0
    bytes: int = 0
    sha256: str = ""
    positives: int = 0  # positive / negative examples (demonstrations) of the task
    negatives: int = 0
    error: dict | None = None  # the AblateError of a task file that does not load: message, file, field, fix
    options: tuple[str, ...] | None = None  # the label set (up to INDEX_OPTIONS_LIMIT values), else None
    options_given: bool = False  # every instance lists its own options

    def check(self) -> None:
        """Raise the task file's error, if it has one (only when the task is used)."""
        if self.error is not None:
            raise AblateError(**self.error)

    @property
    def category(self) -> str:
        self.check()
        return self.categories[0]


def _error_entry(exc: AblateError) -> IndexEntry:
    return IndexEntry(error={"message": exc.message, "file": exc.file, "field": exc.field, "fix": exc.fix})


def build_index(task_dir: Path, names: list[str], store: Path | None = None) -> dict[str, IndexEntry]:
    """Read every task file once (checked as a task: the same errors as loading it, without
    building objects for its instances), keeping only its summary; with `store`, each loading
    file's instances are also converted there (ablate.data.columnar), unless they already are."""
    entries = {}
    collecting = gc.isenabled()
    gc.disable()  # decoded JSON holds no cycles; the collector's passes over it cost ~30% of the build
    try:
        for name in names:
            entries[name] = _index_entry(task_dir / "tasks" / f"{name}.json", name, store)
    finally:
        if collecting:
            gc.enable()
    return entries


def _options_fields(instances: list) -> dict:
    """The index's options fields of a checked instance list (see ablate.data.options)."""
    from ablate.data.options import INDEX_OPTIONS_LIMIT, label_set

    references = (reference for item in instances
                  for reference in ([item["output"]] if type(item["output"]) is str else item["output"]))
    found = label_set(references, INDEX_OPTIONS_LIMIT)
    return {"options": None if found is None else tuple(found),
            "options_given": bool(instances) and all("options" in item for item in instances)}


def _index_entry(path: Path, name: str, store: Path | None = None) -> IndexEntry:
    from ablate.files import decode_json, read_bytes

    fix = "repair the task file (UTF-8 JSON in the SuperNI task format)."
    try:
        content = read_bytes(path, "the task file", fix)  # a regular file only: a FIFO would block the read
        raw = decode_json(content, path, "the task file", fix)
        task = parse_task(name, raw, path, only=())
        entry = IndexEntry(tuple(task.categories), check_instances(raw["Instances"], path, name),
                           len(content), hashlib.sha256(content).hexdigest(),
                           len(task.positive_examples), len(task.negative_examples), **_options_fields(raw["Instances"]))
        if store is not None:
            _store_columns(store, entry.sha256, task, raw["Instances"])
        return entry
    except AblateError as exc:
        return _error_entry(exc)


def _store_columns(store: Path, sha256: str, task, instances: list[dict]) -> None:
    """The task's rows into the columnar store; a store that cannot be written (a full disk, a
    read-only cache) only costs speed: cells read that task from its JSON file."""
    import pyarrow as pa

    from ablate.data.columnar import write_task

    try:
        write_task(store, sha256, task, instances)
    except (OSError, pa.ArrowException):
        pass


def read_index(index_dir: Path | None, fingerprint: str, names: list[str]) -> dict[str, IndexEntry] | None:
    """The saved index for this fingerprint, or None (none saved, unreadable, or another version)."""
    path = index_dir / f"{fingerprint}.json" if index_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        if saved.get("version") == INDEX_VERSION and set(saved["tasks"]) == set(names):
            return {name: IndexEntry(**{**entry, "categories": tuple(entry["categories"]),
                                        "options": None if entry["options"] is None else tuple(entry["options"])})
                    for name, entry in saved["tasks"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def save_index(index_dir: Path, fingerprint: str, task_dir: Path, entries: dict[str, IndexEntry]) -> None:
    path = index_dir / f"{fingerprint}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"version": INDEX_VERSION, "task_dir": str(task_dir),
                                   "tasks": {name: asdict(entry) for name, entry in entries.items()}}))
    os.replace(partial, path)  # atomic: concurrent cells never read half an index


def load_index(task_dir: Path, names: list[str], fingerprint: str, index_dir: Path | None,
               persist: bool) -> dict[str, IndexEntry]:
    """The saved index for this fingerprint if there is one, else a new one (saved when `persist`).
    A persisted index has every loading task in the columnar store beside it: the files missing
    there (a cache folder from before the store, a store removed) are converted now, one at a time."""
    from ablate.data.columnar import store_dir, store_path

    store = store_dir(index_dir) if index_dir is not None and persist else None
    entries = read_index(index_dir, fingerprint, names)
    if entries is None:
        entries = build_index(task_dir, names, store)
        if store is not None:
            save_index(index_dir, fingerprint, task_dir, entries)
    elif store is not None:
        missing = [name for name, entry in entries.items()
                   if entry.error is None and not store_path(store, entry.sha256).is_file()]
        build_index(task_dir, missing, store)
    return entries
