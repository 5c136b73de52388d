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
