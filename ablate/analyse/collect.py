"""Reading a sweep back from MLflow, as typed objects: its plan and baselines (from the parent
run) and each planned cell's latest finished run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ablate import results
from ablate.baselines import BaselineScores
from ablate.errors import AblateError
from ablate.plan import Cell, SweepPlan
from ablate.track.retry import DEFAULT_RETRY_SECONDS
from ablate.status import CellStatus, counted_run


@dataclass
class CellRecord:
    cell: Cell
    status: CellStatus  # DONE, FAILED or TO_RUN (missing: no finished or failed run)
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    error: str | None = None


@dataclass
class SweepRecords:
    experiment: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str
    cells: list[CellRecord]
    baselines: dict[str, BaselineScores]  # empty for sweeps run before baselines were logged
    sweep: str = ""  # the sweep's name (its output folder is ablate_runs/<sweep>)
    plan: SweepPlan | None = None  # its cells and rounds


def collect_sweep(tracking_uri: str, experiment: str, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> SweepRecords:
    """The sweep's planned cells with their MLflow results (latest FINISHED run per cell).

    Cells with no finished run are kept as `failed` or `missing`, never dropped.
    """
    from ablate.track.retry import RetryPolicy
    from ablate.track.store import Store
    from ablate.track.uri import check_tracking_uri, store_exists

    check_tracking_uri(tracking_uri)
    if not store_exists(tracking_uri):
        raise AblateError(f"no MLflow store at {tracking_uri}.", field="--tracking-uri",
                          fix="run the sweep first, or point --tracking-uri at its store.")
    store = Store(tracking_uri, RetryPolicy(retry_seconds))
    experiment_id = store.find_experiment(experiment)
    if experiment_id is None:
        raise AblateError(f"no MLflow experiment named '{experiment}' in {tracking_uri}.",
                          fix=f"run the sweep first; experiments here: {', '.join(store.experiment_names()) or '(none)'}.")
    parent = store.parent_run(experiment_id)
    plan_text = None if parent is None else store.read_text(parent.info.run_id, results.PLAN_ARTIFACT)
    if plan_text is None:
        raise AblateError(f"experiment '{experiment}' has no ablate sweep (no parent run with a plan).",
                          fix="give the name of an experiment made by `ablate sweep`.")
    baselines_text = store.read_text(parent.info.run_id, results.BASELINES_ARTIFACT)
    baselines = {name: BaselineScores.model_validate(scores)
                 for name, scores in json.loads(baselines_text or "{}").items()}
    by_cell = store.cell_runs(experiment_id)
    plan = SweepPlan.from_json(json.loads(plan_text))
    cells = []
    for cell in plan.cells:
        status, run = counted_run(by_cell.get(cell.id, []))
        if status == CellStatus.DONE:
            record = CellRecord(cell, status, dict(run.data.metrics), run.info.run_id)
        elif status == CellStatus.FAILED:
            record = CellRecord(cell, status, run_id=run.info.run_id, error=run.data.tags.get(results.ERROR, "failed"))
        else:
            record = CellRecord(cell, status)
        cells.append(record)
    sweep = parent.data.tags.get(results.SWEEP) or plan.sweep
    return SweepRecords(experiment, experiment_id, parent.info.run_id, tracking_uri, cells, baselines, sweep, plan)
