"""`ablate plan` tells one story: its header counts equal the statuses of its rows (real SQLite store)."""

import io

from ablate import results
from ablate.plan_report import plan_report, print_plan
from ablate.prepare import prepare_sweep
from ablate.track import Store
from tests.conftest import REPO


def test_plan_header_counts_equal_the_row_statuses(tmp_path):
    prepared = prepare_sweep(str(REPO / "sweeps" / "smoke.yaml"), [], tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                             output_dir=str(tmp_path / "out"))
    store = Store(prepared.tracking_uri)
    experiment_id = store.ensure_experiment(prepared.experiment)
    for cell, status in zip(prepared.cells, ("FINISHED", "FAILED", "KILLED")):
        run = store.client.create_run(experiment_id, tags={results.ROLE: results.ROLE_CELL, results.CELL_ID: cell.id})
        store.client.set_terminated(run.info.run_id, status)
    report = plan_report(prepared)
    assert [c["status"] for c in report["cells"]] == ["done", "failed", "to run", "to run"]
    assert (report["total"], report["done"], report["failed"], report["to_run"]) == (4, 1, 1, 2)
    out = io.StringIO()
    print_plan(report, out)
    assert "4 cells (1 done, 1 failed, 2 to run)" in out.getvalue()
    assert "Estimated cost of the 3 cells not done" in out.getvalue()
