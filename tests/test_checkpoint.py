"""Finding a cell's last checkpoint among earlier Tune experiments (resume after kill -9), in a
local folder or behind a URI (read through pyarrow, as Tune writes it), copied to a local folder."""

import json

import pytest

from ablate.checkpoint import latest_checkpoint
from ablate.errors import last_line as _last_line


def _checkpoint(root, experiment, trial, index, cell_id, step, run_id="r1"):
    folder = root / experiment / trial / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps({"cell_id": cell_id, "step": step}))
    (folder / "run_id.txt").write_text(run_id)
    return folder


def _step(folder) -> int | None:
    """The step of a found checkpoint (a local copy, so compared by content), or None."""
    return None if folder is None else json.loads((folder / "cell.json").read_text())["step"]


@pytest.mark.parametrize("as_uri", [False, True], ids=["folder", "file-uri"])
def test_latest_checkpoint_is_the_most_advanced_of_the_cell(tmp_path, as_uri):
    _checkpoint(tmp_path, "sweep-1", "trial_a", 0, "cell1", 20)
    best = _checkpoint(tmp_path, "sweep-2", "trial_b", 3, "cell1", 60)
    _checkpoint(tmp_path, "sweep-2", "trial_c", 4, "cell2", 80)
    storage = f"file://{tmp_path}" if as_uri else str(tmp_path)
    found = latest_checkpoint(storage, "cell1")
    assert _step(found) == 60 and found != best and (found / "run_id.txt").read_text() == "r1"
    assert latest_checkpoint(storage, "cell3") is None
    assert latest_checkpoint(str(tmp_path / "not-yet"), "cell1") is None


def test_a_checkpoint_cut_short_by_a_crash_is_ignored(tmp_path):
    good = _checkpoint(tmp_path, "sweep-1", "trial_a", 0, "cell1", 20)
    broken = _checkpoint(tmp_path, "sweep-2", "trial_a", 1, "cell1", 40)
    (broken / "cell.json").write_text('{"cell_id": "cel')
    half = _checkpoint(tmp_path, "sweep-2", "trial_b", 1, "cell1", 60)
    (half / "run_id.txt").unlink()
    truncated = _checkpoint(tmp_path, "sweep-3", "trial_a", 0, "cell1", 80)
    (truncated / "state.pt").write_bytes(b"x" * 10)
    (truncated / "cell.json").write_text(json.dumps({"cell_id": "cell1", "step": 80, "state_bytes": 1000}))
    unwritten = _checkpoint(tmp_path, "sweep-3", "trial_b", 0, "cell1", 90)
    (unwritten / "cell.json").write_text(json.dumps({"cell_id": "cell1", "step": 90, "state_bytes": 1000}))
    assert _step(latest_checkpoint(str(tmp_path), "cell1")) == _step(good) == 20
    whole = _checkpoint(tmp_path, "sweep-4", "trial_a", 0, "cell1", 100)
    (whole / "state.pt").write_bytes(b"x" * 1000)
    (whole / "cell.json").write_text(json.dumps({"cell_id": "cell1", "step": 100, "state_bytes": 1000}))
    found = latest_checkpoint(str(tmp_path), "cell1")
    assert _step(found) == 100 and (found / "state.pt").read_bytes() == (whole / "state.pt").read_bytes()


def test_last_line_names_the_exception():
    trace = "Traceback (most recent call last):\n  File x\nValueError: bad thing\n\n"
    assert _last_line(trace) == "ValueError: bad thing"
    assert _last_line("") == "failed"
