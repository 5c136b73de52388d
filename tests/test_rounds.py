"""A sweep runs in rounds: each round's cells come from its proposer, which sees the cells
finished so far; every round is recorded in the plan; a re-run proposes the same cells and
trains nothing. Real Ray and a real MLflow store, in a driver process of their own; the cells
are heuristic baselines (seconds)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, ablate_cli

pytestmark = pytest.mark.slow

SPEC = {
    "name": "rounds", "data": {"source": "synthetic", "num_train_tasks": 2, "instances_per_task": 4},
    "model": "copy_demo",
    "train": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_source_length": 64, "max_target_length": 8,
              "encoding": "def+pos2"},
    "eval": {"instances_per_task": 3},
    "seeds": [0],
    "resources": {"max_concurrent": 1},
    "axes": {"model": ["copy_demo", "copy_input"]},
}


def _two_rounds(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tests" / "rounds_scenario.py"), "rounds.yaml", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, json.loads(result.stdout.strip().splitlines()[-1])


def test_a_sweep_runs_its_proposers_rounds_and_a_rerun_trains_nothing(tmp_path):
    (tmp_path / "rounds.yaml").write_text(yaml.safe_dump(SPEC))
    out, first = _two_rounds(tmp_path)
    cells = first["cells"]
    assert first["code"] == 0 and "round 2: 1 cells, 0 cached, 1 to run" in out
    # The second round was proposed knowing the first cell's result, read back from MLflow.
    assert first["seen"][0] == {} and set(first["seen"][1]) == {cells[0]}
    plan = json.loads((tmp_path / "ablate_runs" / "rounds" / "plan.json").read_text())
    assert [(r["round"], r["cells"]) for r in plan["rounds"]] == [(0, [cells[0]]), (1, [cells[1]])]
    assert plan["rounds"][1]["reasons"][cells[1]].startswith("first scored ")
    assert {c["id"] for c in plan["cells"]} == set(cells)

    out, again = _two_rounds(tmp_path)
    assert "round 2: 1 cells, 1 cached, 0 to run" in out and "0 trained, 2 cached" in out
    # The same finished cells with the same scores, so the same proposals (timings differ, not scores).
    assert {c: m["rougeL"] for c, m in again["seen"][1].items()} == {c: m["rougeL"] for c, m in first["seen"][2].items()}


def test_sweep_and_report_write_the_report_to_the_sweeps_own_folder(tmp_path):
    """With tracking.experiment set, `ablate report` (given the spec or the experiment's name)
    writes where `ablate sweep` did: ablate_runs/<sweep name>/report, not .../<experiment>/report."""
    spec = {**SPEC, "name": "folders", "tracking": {"experiment": "an experiment of another name"}, "axes": {}}
    (tmp_path / "folders.yaml").write_text(yaml.safe_dump(spec))
    swept = ablate_cli("sweep", "folders.yaml", "--yes", cwd=tmp_path)
    assert swept.returncode == 0, swept.stdout[-3000:] + swept.stderr[-3000:]
    written = tmp_path / "ablate_runs" / "folders" / "report" / "report.json"
    assert written.is_file()
    for target in ("folders.yaml", "an experiment of another name"):
        written.unlink()
        reported = ablate_cli("report", target, cwd=tmp_path)
        assert reported.returncode == 0, reported.stdout[-3000:] + reported.stderr[-3000:]
        assert written.is_file(), target
    assert not (tmp_path / "ablate_runs" / "an experiment of another name").exists()
