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


def test_a_refined_sweeps_estimate_is_its_budget_not_its_candidate_grid(tmp_path):
    """16 of the 27 candidate cells at most: the estimate, the question before a large sweep and
    `ablate plan` count the costliest 16, and say it is an upper bound."""
    from ablate.estimate import confirm_cost, longest_first, over_thresholds, sweep_estimate

    prepared = prepare_sweep(str(REPO / "sweeps" / "examples_per_task_refine.yaml"),
                             ["refine.budget.cells=16", "resources.confirm_over_cells=20"],
                             tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", output_dir=str(tmp_path / "out"))
    candidates = list(prepared.cells)
    assert len(candidates) > 20
    out = io.StringIO()
    confirm_cost(prepared, candidates, yes=False, out=out)  # 16 <= 20 cells: no question, so no error
    assert not over_thresholds(prepared, candidates)
    bound = sweep_estimate(longest_first(candidates)[:16], prepared.spec.resources.max_concurrent)[0]
    assert f"at most 16 of the {len(candidates)} candidate cell(s) not done (refine.budget.cells 16)" in out.getvalue()
    assert f"~{bound / 60:.1f} cell-minutes" in out.getvalue()
    report = plan_report(prepared)
    assert report["estimate"]["cells"] == 16 and report["to_run"] == len(candidates)
    printed = io.StringIO()
    print_plan(report, printed)
    assert f"at most 16 of the {len(candidates)} candidate cells not done" in printed.getvalue()
    over = prepare_sweep(str(REPO / "sweeps" / "examples_per_task_refine.yaml"),
                         ["refine.budget.cells=16", "resources.confirm_over_cells=15"],
                         tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", output_dir=str(tmp_path / "out2"))
    assert over_thresholds(over, candidates)
