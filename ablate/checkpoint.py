"""The checkpoint format of a cell: a folder with the MLflow run id, a marker and the training state.

    run_id.txt   the cell's MLflow child run (a retried or resumed cell reattaches it)
    cell.json    {"cell_id", "step", "state_bytes"}: written last, so a folder cut short shows
    state.pt     model, optimizer and scheduler state (absent in a cell's first checkpoint)

Tune keeps these folders in the sweep's storage (`resources.storage_path`: a local folder, by
default `ablate_runs/NAME/ray`, or a URI every node reaches such as `s3://bucket/path`);
`latest_checkpoint` finds a cell's most advanced whole checkpoint there when an interrupted sweep
is run again, and copies it to a local folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_ID_FILE, MARKER_FILE, STATE_FILE = "run_id.txt", "cell.json", "state.pt"


def write_checkpoint(folder: Path, cell_id: str, run_id: str, step: int, state: dict[str, Any] | None) -> None:
    import torch

    (folder / RUN_ID_FILE).write_text(run_id)
    marker: dict[str, Any] = {"cell_id": cell_id, "step": step}
    if state is not None:
        torch.save(state, folder / STATE_FILE)
        marker["state_bytes"] = (folder / STATE_FILE).stat().st_size
    (folder / MARKER_FILE).write_text(json.dumps(marker))


def read_run_id(folder: Path) -> str:
    return (folder / RUN_ID_FILE).read_text().strip()


def read_step(folder: Path) -> int:
    """The cell's step the checkpoint was made at (counting on over its stages: a later stage's
    state holds its own step, ablate.cell._stage_checkpoints)."""
    return json.loads((folder / MARKER_FILE).read_text())["step"]


def read_state(folder: Path) -> dict[str, Any] | None:
    import torch

    path = folder / STATE_FILE
    # On the CPU first: a cell resumed on another node (or without a GPU) can still read it.
    return torch.load(path, weights_only=False, map_location="cpu") if path.is_file() else None


def storage_filesystem(storage: str):
    """(pyarrow filesystem, path) of a Tune storage location: a local folder or a URI pyarrow
    resolves (s3://bucket/path?endpoint_override=HOST:PORT&scheme=http, gs://..., hdfs://...), as Tune does."""
    import pyarrow.fs

    if "://" not in storage:
        return pyarrow.fs.LocalFileSystem(), str(Path(storage).resolve())
    return pyarrow.fs.FileSystem.from_uri(storage)


def latest_checkpoint(storage: str, cell_id: str) -> Path | None:
    """The most advanced whole checkpoint of a cell among earlier Tune experiments of this sweep,
    copied to a local temporary folder (the storage may be remote); None when there is none."""
    import tempfile

    import pyarrow.fs

    filesystem, root = storage_filesystem(storage)
    try:
        listing = filesystem.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError:
        return None
    sizes = {info.path: info.size for info in listing if info.type == pyarrow.fs.FileType.File}
    best, best_step = None, -1
    for path in sizes:
        folder, _, name = path.rpartition("/")
        if name != MARKER_FILE or not folder.rpartition("/")[2].startswith("checkpoint_"):
            continue
        try:
            with filesystem.open_input_stream(path) as stream:
                saved = json.loads(stream.read())
        except (OSError, ValueError):
            continue  # a checkpoint cut short by a crash
        if saved.get("cell_id") == cell_id and saved.get("step", -1) > best_step and _complete(folder, saved, sizes):
            best, best_step = folder, saved["step"]
    if best is None:
        return None
    local = Path(tempfile.mkdtemp(prefix=f"ablate-resume-{cell_id}-"))
    pyarrow.fs.copy_files(best, str(local), source_filesystem=filesystem,
                          destination_filesystem=pyarrow.fs.LocalFileSystem())
    return local


def _complete(folder: str, saved: dict, sizes: dict[str, int]) -> bool:
    """Whether a checkpoint folder was copied whole: Tune copies it file by file, so a crash can
    leave the marker beside a missing run id or a truncated training state."""
    if f"{folder}/{RUN_ID_FILE}" not in sizes:
        return False
    if "state_bytes" not in saved:
        return True  # the cell's first checkpoint: only the run id
    return sizes.get(f"{folder}/{STATE_FILE}") == saved["state_bytes"]
