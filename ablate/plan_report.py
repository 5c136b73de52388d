"""`ablate plan`: the cells with their status from MLflow, and the cost of those not done."""

from __future__ import annotations

from typing import TextIO

from ablate.estimate import estimate_seconds, sweep_estimate, within_budget
from ablate.prepare import PreparedSweep
from ablate.spec import folded_axis
from ablate.status import CellStatus, StatusPrefetch, cell_statuses, cells_to_run


def plan_report(prepared: PreparedSweep, prefetch: StatusPrefetch | None = None) -> dict:
    statuses = cell_statuses(prepared, prefetch)
    cells = [{"id": c.id, "name": c.name, "axis_values": c.axis_values, "status": statuses[c.id].value,
              "test_encodings": c.settings.test_encodings, "estimated_seconds": round(estimate_seconds(c), 1)}
             for c in prepared.cells]
    from ablate.fold import fold_groups

    to_run = cells_to_run(prepared.cells, statuses)
    folded = folded_axis(prepared.spec) is not None
    counted = within_budget(prepared, to_run)  # a refined sweep runs at most its budget of them
    cell_seconds, wall_seconds = sweep_estimate(counted, prepared.spec.resources.max_concurrent, folded)
    counts = {status: sum(c["status"] == status for c in cells) for status in CellStatus}
    return {"sweep": prepared.spec.name, "experiment": prepared.experiment, "tracking_uri": prepared.tracking_uri,
            "total": len(cells), "done": counts[CellStatus.DONE], "failed": counts[CellStatus.FAILED],
            "to_run": counts[CellStatus.TO_RUN],
            "trainings": len(fold_groups(to_run)) if folded else len(to_run),  # one per folded group
            "cells": cells, "warnings": list(prepared.warnings), "notes": list(prepared.notes),
            "estimate": {"cells": len(counted), "cell_seconds": round(cell_seconds, 1),
                         "wall_seconds": round(wall_seconds, 1)}}


def print_plan(report: dict, out: TextIO) -> None:
    print(f"Sweep '{report['sweep']}': {report['total']} cells ({report['done']} done, {report['failed']} failed, "
          f"{report['to_run']} to run); MLflow experiment '{report['experiment']}' at {report['tracking_uri']}",
          file=out)
    for warning in report["warnings"]:
        print(f"Warning: {warning}", file=out)
    for note in report["notes"]:
        print(f"Tasks: {note}", file=out)
    for cell in report["cells"]:
        print(f"  {cell['id']}  {cell['status']:<7} {cell['name']}  (~{cell['estimated_seconds']:.0f}s)", file=out)
    not_done = report["failed"] + report["to_run"]
    if report["trainings"] < not_done:
        trainings = report["trainings"]
        print(f"train.steps is folded: the {not_done} cells not done take {trainings} training"
              f"{'s' if trainings != 1 else ''}, each scoring its shorter cells on the way.", file=out)
    estimate = report["estimate"]
    minutes, cell_minutes = estimate["wall_seconds"] / 60, estimate["cell_seconds"] / 60
    if estimate["cells"] < not_done:  # a refined sweep: its budget, not the candidate grid
        print(f"Estimated cost of the refinement: at most {estimate['cells']} of the {not_done} candidate cells not "
              f"done (its refine.budget): at most ~{cell_minutes:.1f} cell-minutes, ~{minutes:.1f} minutes of wall "
              f"time here; it stops sooner when its goal is met.", file=out)
        return
    print(f"Estimated cost of the {not_done} cells not done: ~{cell_minutes:.1f} cell-minutes, ~{minutes:.1f} "
          f"minutes of wall time here.", file=out)

