"""Reading a sweep back from MLflow, as typed objects: its plan and baselines (from the parent
run) and each planned cell's latest finished run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ablate import results
from ablate.baselines import BaselineScores
from ablate.errors import AblateError
from ablate.plan import Cell


@dataclass
class CellRecord:
    cell: Cell
    status: str  # done | failed | missing
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


def collect_sweep(tracking_uri: str, experiment: str) -> SweepRecords:
    """The sweep's planned cells with their MLflow results (latest FINISHED run per cell).

    Cells with no finished run are kept as `failed` or `missing`, never dropped.
    """
    from ablate.track import Store, check_tracking_uri, store_exists

    check_tracking_uri(tracking_uri)
    if not store_exists(tracking_uri):
        raise AblateError(f"no MLflow store at {tracking_uri}.", field="--tracking-uri",
                          fix="run the sweep first, or point --tracking-uri at its store.")
    store = Store(tracking_uri)
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
    cells = []
    for planned in json.loads(plan_text)["cells"]:
        cell = Cell.from_json(planned)
        candidates = list(reversed(by_cell.get(cell.id, [])))  # newest first
        finished = [r for r in candidates if r.info.status == "FINISHED"]
        failed = [r for r in candidates if r.info.status == "FAILED"]
        if finished:
            record = CellRecord(cell, "done", dict(finished[0].data.metrics), finished[0].info.run_id)
        elif failed:
            record = CellRecord(cell, "failed", run_id=failed[0].info.run_id,
                                error=failed[0].data.tags.get(results.ERROR, "failed"))
        else:
            record = CellRecord(cell, "missing")
        cells.append(record)
    return SweepRecords(experiment, experiment_id, parent.info.run_id, tracking_uri, cells, baselines)
