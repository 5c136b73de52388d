"""A refined sweep through the real CLI (real Ray, real MLflow store): its rounds, the reason tag on
each cell, the refine/... series in the parent run, rounds in report.json, and a re-run that
trains nothing. The cells are heuristic baselines (seconds each)."""

import json

import pytest
import yaml

from ablate.analyse.report_model import Report
from tests.conftest import ablate_cli

pytestmark = pytest.mark.slow

SPEC = {
    "name": "refined", "data": {"source": "synthetic", "num_train_tasks": 2, "instances_per_task": 4},
    "model": "copy_demo",
    "train": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_source_length": 64, "max_target_length": 8,
              "encoding": "def+pos2"},
    "eval": {"instances_per_task": 3},
    "seeds": [0, 1],
    "resources": {"max_concurrent": 2},
    "refine": {"axis": "instances_per_task", "candidates": [1, 2, 4, 8, 16, 32],
               "initial": {"points": 4, "seeds": 2}, "goal": {"kind": "knee", "ratio": 4}, "budget": {"cells": 12}},
}


def test_a_refined_sweep_records_its_rounds_and_reasons_and_a_rerun_trains_nothing(tmp_path):
    from mlflow.tracking import MlflowClient

    from ablate import results

    (tmp_path / "refined.yaml").write_text(yaml.safe_dump(SPEC))
    first = ablate_cli("sweep", "refined.yaml", "--yes", "--budget", "10", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Refinement: " in first.stdout and "of at most 10 cells" in first.stdout
    plan = json.loads((tmp_path / "ablate_runs" / "refined" / "plan.json").read_text())
    assert len(plan["rounds"]) >= 2 and len(plan["cells"]) <= 10
    assert len(plan["rounds"][0]["cells"]) == 8  # the initial design: 4 points x 2 seeds
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("refined")
    runs = client.search_runs([experiment.experiment_id])
    cells = [r for r in runs if r.data.tags.get(results.ROLE) == results.ROLE_CELL]
    parent = next(r for r in runs if r.data.tags.get(results.ROLE) == results.ROLE_PARENT)
    assert len(cells) == len(plan["cells"])
    assert all(r.data.tags[results.REFINE_REASON].startswith("round ") for r in cells)
    history = client.get_metric_history(parent.info.run_id, results.REFINE_CELLS)
    assert [m.step for m in history] == list(range(len(plan["rounds"])))
    assert parent.data.tags[results.REFINE_STOPPED] == first.stdout.split("Refinement: ")[1].splitlines()[0].rstrip(".")
    report = Report.model_validate(json.loads((tmp_path / "ablate_runs" / "refined" / "report" / "report.json").read_text()))
    assert set(report.rounds) == {c["id"] for c in plan["cells"]}

    again = ablate_cli("sweep", "refined.yaml", "--yes", "--budget", "10", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 trained" in again.stdout
    assert first.stdout.split("Refinement: ")[1].splitlines()[0] == again.stdout.split("Refinement: ")[1].splitlines()[0]


KILL_SPEC = {  # 3 rounds of baseline cells (seconds each): 3 points x 1 seed, 2 new points, then 2 more cells
    **SPEC, "name": "refined-kill", "seeds": [0, 1, 2],
    "refine": {"axis": "instances_per_task", "candidates": [1, 2, 4, 8, 16, 32],
               "initial": {"points": 3, "seeds": 1}, "goal": {"kind": "knee", "ratio": 1.01},
               "budget": {"cells": 8, "round_size": 2}},
}


def _refined_state(folder):
    """plan.json's rounds (cell ids and reasons), the FINISHED cell runs by id, and the parent's
    refine/cells steps."""
    from mlflow.tracking import MlflowClient

    from ablate import results

    plan = json.loads((folder / "ablate_runs" / "refined-kill" / "plan.json").read_text())
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("refined-kill")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    finished: dict[str, list] = {}
    for run in runs:
        if run.data.tags.get(results.ROLE) == results.ROLE_CELL and run.info.status == "FINISHED":
            finished.setdefault(run.data.tags[results.CELL_ID], []).append(run)
    parent = next(r for r in runs if r.data.tags.get(results.ROLE) == results.ROLE_PARENT)
    steps = [m.step for m in client.get_metric_history(parent.info.run_id, results.REFINE_CELLS)]
    rounds = [(r["cells"], r["reasons"]) for r in plan["rounds"]]
    return rounds, finished, steps, runs


def test_kill_9_mid_round_then_a_rerun_ends_with_the_cells_and_rounds_of_an_uninterrupted_refinement(tmp_path):
    """A refined sweep, its whole process group SIGKILLed while a cell of round 1 is running, then run again: the same rounds (cell ids, reasons) and cells as the
    same refinement run without interruption in another folder; a re-run of the finished sweep
    trains nothing."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from ablate import results
    from tests.conftest import descendants, kill_tree, start_cli, wait_until

    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    for folder in (reference_dir, crashed_dir):
        folder.mkdir()
        (folder / "refined.yaml").write_text(yaml.safe_dump(KILL_SPEC))
    # The uninterrupted refinement runs beside the one to be killed (its own folder, store and Ray).
    log = (reference_dir / "sweep.log").open("w")  # a file, not a pipe nobody reads while the other runs
    reference = subprocess.Popen([shutil.which("ablate", path=str(Path(sys.executable).parent)) or "ablate", "sweep",
                                  "refined.yaml", "--yes"], cwd=reference_dir, stdout=log, stderr=subprocess.STDOUT,
                                 text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)
    sweep = start_cli("sweep", "refined.yaml", "--yes", cwd=crashed_dir)
    seen: list[int] = []

    def round_1_running():
        if sweep.poll() is not None:
            return "ended"
        seen.extend(p for p in descendants(sweep.pid) if p not in seen)
        if not (crashed_dir / "mlflow.db").exists():
            return False
        client = MlflowClient(f"sqlite:///{crashed_dir / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("refined-kill")
        if experiment is None:
            return False
        running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING' and "
                                     "tags.`ablate.role` = 'cell'")
        return any(r.data.tags.get(results.REFINE_REASON, "").startswith("round 1:") for r in running)

    try:
        reached = wait_until(round_1_running, 1500, "a cell of round 1 running in MLflow", every=0.2)
        assert reached is True, "the sweep ended before round 1 was caught running"
        os.killpg(sweep.pid, signal.SIGKILL)  # the whole process group, mid-round
        sweep.wait(timeout=30)
        reference.wait(timeout=1500)
    finally:
        kill_tree(sweep, also=seen)
        if reference.poll() is None:
            kill_tree(reference)
    log.close()
    reference_output = (reference_dir / "sweep.log").read_text()
    assert reference.returncode == 0, reference_output[-3000:]
    expected_rounds, expected_finished, expected_steps, _ = _refined_state(reference_dir)
    assert len(expected_rounds) >= 3 and len(expected_rounds[0][0]) == 3
    killed_rounds, killed_finished, _, killed_runs = _refined_state(crashed_dir)
    assert len(killed_rounds) == 2 and len(killed_finished) < len(expected_finished), "killed in round 1"
    assert any(r.info.status == "RUNNING" for r in killed_runs), "the kill left a cell run RUNNING"

    again = ablate_cli("sweep", "refined.yaml", "--yes", cwd=crashed_dir, timeout=1500)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rounds, finished, steps, runs = _refined_state(crashed_dir)
    assert rounds == expected_rounds, "the same rounds: cell ids and reasons"
    assert set(finished) == set(expected_finished) and all(len(v) == 1 for v in finished.values())
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert steps == expected_steps == list(range(len(expected_rounds))), "each round's refine/ values logged once"
    assert again.stdout.split("Refinement: ")[1].splitlines()[0] == \
        reference_output.split("Refinement: ")[1].splitlines()[0]

    final = ablate_cli("sweep", "refined.yaml", "--yes", cwd=crashed_dir, timeout=1500)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "0 trained" in final.stdout
    assert _refined_state(crashed_dir)[0] == expected_rounds
