"""The same settings give the same numbers: a sweep run twice from scratch, in fresh folders, with
its cells in another order and another concurrency (so reused workers run other cells before
each one), logs identical metrics per cell."""

from pathlib import Path

import pytest
import yaml

from ablate import results
from tests.conftest import REPO, ablate_cli

pytestmark = pytest.mark.slow


def _sweep(folder: Path, seeds: list[int], instances: list[int], max_concurrent: int) -> dict[str, dict]:
    """Run the smoke spec (4 cells) in `folder`; the metrics and loss curve of each cell, by cell id."""
    from mlflow.tracking import MlflowClient

    folder.mkdir()
    spec = yaml.safe_load((REPO / "sweeps" / "smoke.yaml").read_text())
    spec.update(name="same", seeds=seeds, axes={"instances_per_task": instances},
                resources={"max_concurrent": max_concurrent})
    (folder / "same.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = ablate_cli("sweep", "same.yaml", cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("same")
    cells = {}
    for run in client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'"):
        assert run.info.status == "FINISHED"
        metrics = {k: v for k, v in run.data.metrics.items() if not results.is_machine_measure(k)}
        curve = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, results.TRAIN_LOSS)]
        cells[run.data.tags["ablate.cell_id"]] = {"metrics": metrics, "train_loss": sorted(curve)}
    return cells


def test_a_sweep_run_twice_in_another_order_and_concurrency_gives_identical_metrics_per_cell(tmp_path):
    first = _sweep(tmp_path / "first", seeds=[0, 1], instances=[8, 16], max_concurrent=2)
    # Cells in the reverse order, one worker running all four after one another.
    second = _sweep(tmp_path / "second", seeds=[1, 0], instances=[16, 8], max_concurrent=1)
    assert len(first) == 4 and set(first) == set(second), "the same cells (ids) in both sweeps"
    for cell_id, cell in first.items():
        assert cell["metrics"].keys() >= {"exact_match", "rougeL"}
        assert cell["metrics"] == second[cell_id]["metrics"], cell_id
        assert cell["train_loss"] == second[cell_id]["train_loss"], cell_id
