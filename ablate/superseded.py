"""Runs of cells the plan no longer holds, under a name it still holds: superseded.

A cell's id hashes its settings and its data's fingerprint, so when the data change (a task removed
from the directory) or a setting outside the axes does, a re-run adds child runs with the same
names (`instances_per_task=8 seed=0`) under the same parent run. The older runs are marked: tag
`ablate.superseded` holds the id of the cell now planned under that name, and the run's name gets
" (superseded)", so the MLflow runs table shows which run is current. Their results stay as they
were; the report reads the planned cells only.
"""

from __future__ import annotations

from typing import Any, TextIO

from ablate import results

SUFFIX = " (superseded)"


def superseded_runs(runs: dict[str, list[Any]], current: dict[str, str]) -> list[tuple[Any, str]]:
    """(run, id of the current cell of its name) for each run not yet marked whose cell id is not
    planned but whose name is. `runs`: cell id -> runs; `current`: cell name -> planned cell id."""
    planned = set(current.values())
    found = []
    for cell_id, cell_runs in runs.items():
        if cell_id in planned:
            continue
        for run in cell_runs:
            name = run.info.run_name or ""
            if name in current and results.SUPERSEDED not in run.data.tags:
                found.append((run, current[name]))
    return found


def mark_superseded(store, runs: dict[str, list[Any]], cells, out: TextIO) -> int:
    """Tag and rename the superseded runs (see the module docstring); returns how many."""
    found = superseded_runs(runs, {cell.name: cell.id for cell in cells})
    for run, current_id in found:
        store.set_tag(run.info.run_id, results.SUPERSEDED, current_id)
        store.set_tag(run.info.run_id, results.RUN_NAME, (run.info.run_name or "") + SUFFIX)
    if found:
        print(f"Marked {len(found)} run(s) of earlier data or settings as superseded (tag "
              f"'{results.SUPERSEDED}', name ending '{SUFFIX.strip()}'): the plan's cells of those names have new ids.",
              file=out)
    return len(found)
