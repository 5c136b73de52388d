"""The checkpoint format of a cell: a folder with the MLflow run id, a marker and the training state.

    run_id.txt   the cell's MLflow child run (a retried or resumed cell reattaches it)
    cell.json    {"cell_id", "step", "state_bytes"}: written last, so a folder cut short shows
    state.pt     model, optimizer and scheduler state (absent in a cell's first checkpoint)

Tune keeps these folders under the sweep's `ray/` storage; `latest_checkpoint` finds a cell's
most advanced whole checkpoint there when an interrupted sweep is run again.
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


def read_state(folder: Path) -> dict[str, Any] | None:
    import torch

    path = folder / STATE_FILE
    # On the CPU first: a cell resumed on another node (or without a GPU) can still read it.
    return torch.load(path, weights_only=False, map_location="cpu") if path.is_file() else None


def latest_checkpoint(ray_dir: Path, cell_id: str) -> Path | None:
    """The most advanced whole checkpoint of a cell among earlier Tune experiments of this sweep."""
    best, best_step = None, -1
    for marker in ray_dir.glob(f"*/*/checkpoint_*/{MARKER_FILE}"):
        try:
            saved = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a checkpoint cut short by a crash
        if saved.get("cell_id") == cell_id and saved.get("step", -1) > best_step and _complete(marker.parent, saved):
            best, best_step = marker.parent, saved["step"]
    return best


def _complete(folder: Path, saved: dict) -> bool:
    """Whether a checkpoint folder was copied whole: Tune copies it file by file, so a crash can
    leave the marker beside a missing run id or a truncated training state."""
    if not (folder / RUN_ID_FILE).is_file():
        return False
    if "state_bytes" not in saved:
        return True  # the cell's first checkpoint: only the run id
    state = folder / STATE_FILE
    return state.is_file() and state.stat().st_size == saved["state_bytes"]
