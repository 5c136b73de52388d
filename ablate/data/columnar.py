"""Task files as memory-mapped Arrow: each task's instances converted once, when the index is
built, so a cell reads the rows it samples and evaluates by position without parsing the task's
JSON (a release's task file holds thousands of instances; a split-sized cell opens 875 of them).

One file per task content: `<index_dir>/columns/v1/<sha256 of the task file>.arrow`, an Arrow IPC
stream (the format `datasets` keeps its own tables in: `datasets.Dataset.from_file` opens it too)
with the columns `id` (null where the file gives none: the id is then `<task name>-<position>`, so
one content serves every name), `input`, `references` and `options` (as `ablate.data.tasks.Instance`
holds them), and the task's definition, examples, categories and other keys as JSON in the
schema's metadata. Keyed by content, an unchanged file is never converted again (not when the
directory around it changes, not by another sweep sharing the cache). Written under a scratch
name and renamed into place: a conversion that dies midway leaves a scratch file no reader opens.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Sequence

from ablate.data.tasks import Example, Instance, Task, instance_options

STORE_VERSION = 1
TASK_KEY = b"ablate.task"


def store_dir(index_dir: Path) -> Path:
    """Where a cache folder's converted tasks live: beside its index."""
    return index_dir / "columns" / f"v{STORE_VERSION}"


def store_path(store: Path, sha256: str) -> Path:
    return store / f"{sha256}.arrow"


def write_task(store: Path, sha256: str, task: Task, instances: list[dict]) -> Path:
    """Convert one checked task file (`task`: parsed without instances; `instances`: its decoded,
    checked instance objects) into the store, unless it is there already. Returns its path."""
    import pyarrow as pa

    path = store_path(store, sha256)
    if path.is_file():
        return path
    strings = pa.list_(pa.string())
    table = pa.table({
        "id": pa.array([str(item["id"]) if "id" in item else None for item in instances], pa.string()),
        "input": pa.array([item["input"] for item in instances], pa.string()),
        "references": pa.array([[item["output"]] if type(item["output"]) is str else item["output"]
                                for item in instances], strings),
        "options": pa.array([instance_options(item) for item in instances], strings),
    })
    described = task.model_dump(mode="json", exclude={"name", "instances"})
    table = table.replace_schema_metadata({TASK_KEY: json.dumps(described, ensure_ascii=False).encode()})
    store.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f"{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with pa.OSFile(str(scratch), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(scratch, path)  # atomic: a reader sees the whole file or none
    finally:
        if scratch.exists():
            scratch.unlink()
    return path


def read_task(path: Path, name: str, positions: Sequence[int]) -> Task:
    """The task stored at `path`, named `name`, with only the instances at `positions`, in that
    order: what `ablate.data.tasks.load_task(file, only=positions)` gives from the JSON."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_stream(source).read_all()
    described: dict[str, Any] = json.loads(table.schema.metadata[TASK_KEY])
    positions = list(positions)
    rows = table.take(pa.array(positions, pa.int64())).to_pydict()
    instances = tuple(
        Instance(id=f"{name}-{i}" if instance_id is None else instance_id, input=text,
                 references=tuple(references), options=None if options is None else tuple(options))
        for i, instance_id, text, references, options
        in zip(positions, rows["id"], rows["input"], rows["references"], rows["options"]))
    return Task(name=name, definition=described["definition"],
                positive_examples=tuple(Example(**e) for e in described["positive_examples"]),
                negative_examples=tuple(Example(**e) for e in described["negative_examples"]),
                instances=instances, categories=tuple(described["categories"]), metadata=described["metadata"])


def stored_task(store: Path | None, sha256: str, name: str, positions: Sequence[int],
                newer_than: Path | None = None) -> Task | None:
    """The task from the store, or None where it is not there, unreadable, or older than the task
    file `newer_than` (edited since it was stored): the caller reads the JSON."""
    if store is None or not sha256:
        return None
    path = store_path(store, sha256)
    if not path.is_file():
        return None
    try:
        if newer_than is not None and newer_than.stat().st_mtime_ns > path.stat().st_mtime_ns:
            return None
    except OSError:
        return None
    import pyarrow as pa

    try:
        return read_task(path, name, positions)
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
