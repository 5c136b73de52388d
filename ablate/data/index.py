"""The task index of a task directory: per task, its categories, instance count, file size, content
hash and answer options (ablate.data.options), or the error its file gives. Selection, validation,
planning and the report read the index, never the task files, so a 1,600-task SuperNI release
costs one pass over its files.

The index is built by reading each task file once, in turn (memory bounded by the largest file),
and saved as `<index_dir>/<fingerprint>.json` where a caller persists it (a sweep and its cells: in
their cache folder); the fingerprint (task file names and sizes, split file contents) changes when
the directory does, so a stale index is never read.
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


def build_index(task_dir: Path, names: list[str]) -> dict[str, IndexEntry]:
    """Read every task file once (checked as a task: the same errors as loading it, without
    building objects for its instances), keeping only its summary."""
    entries = {}
    collecting = gc.isenabled()
    gc.disable()  # decoded JSON holds no cycles; the collector's passes over it cost ~30% of the build
    try:
        for name in names:
            entries[name] = _index_entry(task_dir / "tasks" / f"{name}.json", name)
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


def _index_entry(path: Path, name: str) -> IndexEntry:
    from ablate.files import decode_json, read_bytes

    fix = "repair the task file (UTF-8 JSON in the SuperNI task format)."
    try:
        content = read_bytes(path, "the task file", fix)  # a regular file only: a FIFO would block the read
        raw = decode_json(content, path, "the task file", fix)
        task = parse_task(name, raw, path, only=())
        return IndexEntry(tuple(task.categories), check_instances(raw["Instances"], path, name),
                          len(content), hashlib.sha256(content).hexdigest(),
                          len(task.positive_examples), len(task.negative_examples), **_options_fields(raw["Instances"]))
    except AblateError as exc:
        return _error_entry(exc)


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
    """The saved index for this fingerprint if there is one, else a new one (saved when `persist`)."""
    entries = read_index(index_dir, fingerprint, names)
    if entries is None:
        entries = build_index(task_dir, names)
        if index_dir is not None and persist:
            save_index(index_dir, fingerprint, task_dir, entries)
    return entries
