"""Reading a sweep back from MLflow: its plan (from the parent run) and each cell's finished run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ablate.errors import AblateError


@dataclass
class CellRecord:
    cell_id: str
    name: str
    axis_values: dict[str, Any]
    settings: dict
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


def collect_sweep(tracking_uri: str, experiment: str) -> SweepRecords:
    """The sweep's planned cells with their MLflow results (latest FINISHED run per cell).

    Cells with no finished run are kept as `failed` or `missing`, never dropped.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from ablate.track import store_exists

    if not store_exists(tracking_uri):
        raise AblateError(f"no MLflow store at {tracking_uri}.", field="--tracking-uri",
                          fix="run the sweep first, or point --tracking-uri at its store.")
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise AblateError(f"no MLflow experiment named '{experiment}' in {tracking_uri}.",
                          fix=f"run the sweep first; experiments here: {', '.join(names) or '(none)'}.")
    mlflow.set_tracking_uri(tracking_uri)
    parents = mlflow.search_runs(experiment_ids=[found.experiment_id], output_format="list",
                                 filter_string="tags.`ablate.role` = 'parent'", order_by=["attributes.start_time DESC"])
    if not parents:
        raise AblateError(f"experiment '{experiment}' has no ablate sweep (no parent run).",
                          fix="give the name of an experiment made by `ablate sweep`.")
    parent = parents[0]
    plan = json.loads(_read_artifact(client, parent.info.run_id, "plan.json"))
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], output_format="list",
                              filter_string="tags.`ablate.role` = 'cell'", order_by=["attributes.start_time DESC"],
                              max_results=50000)
    by_cell: dict[str, list] = {}
    for run in runs:
        by_cell.setdefault(run.data.tags.get("ablate.cell_id"), []).append(run)
    cells = []
    for planned in plan["cells"]:
        candidates = by_cell.get(planned["id"], [])
        finished = [r for r in candidates if r.info.status == "FINISHED"]
        record = CellRecord(cell_id=planned["id"], name=planned["name"], axis_values=planned["axis_values"],
                            settings=planned["settings"], status="missing")
        if finished:
            record.status, record.run_id, record.metrics = "done", finished[0].info.run_id, dict(finished[0].data.metrics)
        elif any(r.info.status == "FAILED" for r in candidates):
            failed = next(r for r in candidates if r.info.status == "FAILED")
            record.status, record.run_id = "failed", failed.info.run_id
            record.error = failed.data.tags.get("ablate.error", "failed")
        cells.append(record)
    return SweepRecords(experiment, found.experiment_id, parent.info.run_id, tracking_uri, cells)


def _read_artifact(client, run_id: str, path: str) -> str:
    import os
    import tempfile
    from pathlib import Path

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="ablate-report-") as scratch:
        return Path(client.download_artifacts(run_id, path, scratch)).read_text()
