"""The sweep's set-up in MLflow before its cells run, and its bookkeeping after: the experiment and
parent run, the plan files, the task indexes, the baselines; closing runs left open; timings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ablate import results
from ablate.files import write_json
from ablate.plan import Cell, SweepPlan
from ablate.prepare import PreparedSweep
from ablate.spec import spec_to_yaml
from ablate.superseded import mark_superseded
from ablate.status import RUN_FAILED, RUN_KILLED, CellStatus, cell_status, cells_to_run
from ablate.timing import SweepTiming


FINISHED_FILE = "finished.json"  # in the output folder: ids of the cells done when the last sweep ended


def finished_last_time(prepared: PreparedSweep) -> set[str]:
    """Cells the last sweep in this output folder left done: a hint for when to start Ray (the
    statuses themselves always come from MLflow)."""
    try:
        return set(json.loads((prepared.output_dir / FINISHED_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return set()


@dataclass(frozen=True)
class Tracked:
    experiment_id: str
    parent_run_id: str
    plan: SweepPlan
    statuses: dict[str, CellStatus]  # of every cell with a run in the experiment, as the sweep began


def prepare_tracking(prepared: PreparedSweep, store, force: bool, out: TextIO) -> Tracked:
    """The sweep's MLflow experiment and parent run (runs left RUNNING by a crash closed first),
    its plan files, its task indexes and its baselines."""
    spec = prepared.spec
    runs = store.cell_runs(store.find_experiment(prepared.experiment))
    statuses = {cid: cell_status(r) for cid, r in runs.items()}
    mark_superseded(store, runs, prepared.cells, out)
    experiment_id = store.ensure_experiment(prepared.experiment, describe_sweep(prepared))
    closed = store.close_stale_runs(runs)
    if closed:
        print(f"Closed {closed} run(s) left RUNNING by an interrupted sweep as KILLED.", file=out)
    prepared.print_warnings(out)
    # A refinement's plan holds the cells its rounds propose, not its whole candidate grid.
    plan = SweepPlan(spec.name, list(prepared.cells) if spec.refine is None else [])
    (prepared.output_dir / results.SPEC_ARTIFACT).parent.mkdir(parents=True, exist_ok=True)
    (prepared.output_dir / results.SPEC_ARTIFACT).write_text(spec_to_yaml(spec))
    parent_run_id = store.start_parent_run(experiment_id, spec.name, {results.SPEC_ARTIFACT: spec_to_yaml(spec)})
    record_plan(store, parent_run_id, prepared.output_dir, plan)
    save_task_indexes(prepared.cells, prepared.output_dir / "cache")
    to_run = cells_to_run(prepared.cells, statuses, force)
    if to_run or not store.has_artifact(parent_run_id, results.BASELINES_ARTIFACT):
        log_baselines(store, parent_run_id, prepared.cells[0], prepared.output_dir / "cache")
    return Tracked(experiment_id, parent_run_id, plan, statuses)


def record_plan(store, parent_run_id: str, output_dir: Path, plan: SweepPlan) -> None:
    """The plan so far, in the output folder and in the parent run (written again after each round
    is proposed, before its cells start)."""
    saved = plan.to_json()
    write_json(output_dir / results.PLAN_ARTIFACT, saved)
    store.log_text(parent_run_id, json.dumps(saved, indent=1), results.PLAN_ARTIFACT)


def log_timing(store, parent_run_id: str, timing: SweepTiming, outcomes) -> None:
    """Each cell's wall time into its child run, and the sweep's timing into the parent run: the
    MLflow UI shows where the time went."""
    for outcome in outcomes:
        if outcome.run_id and outcome.seconds is not None:
            wall = {results.CELL_WALL_SECONDS: outcome.seconds}
            if outcome.launch_seconds is not None:
                wall[results.CELL_LAUNCH] = outcome.launch_seconds
            if outcome.times:  # the seconds no part of the cell holds (Tune's bookkeeping, reporting the result)
                wall[results.CELL_UNACCOUNTED] = (outcome.seconds - sum(outcome.times.values())
                                                  - (outcome.launch_seconds or 0.0))
            store.log_metrics(outcome.run_id, wall)
    store.log_metrics(parent_run_id, timing.metrics())



def describe_sweep(prepared: PreparedSweep) -> str:
    """The experiment's description in the MLflow UI: what the sweep ablates and how to reproduce it."""
    from ablate.plan import format_value

    spec = prepared.spec
    def listed(values) -> str:
        if isinstance(values, dict) and "fold" in values:  # train.steps: {values: [...], fold: true}
            return ", ".join(format_value(v) for v in values["values"]) + (" (folded)" if values["fold"] else "")
        return ", ".join(format_value(v) for v in values) if isinstance(values, list) else str(values)

    axes = "; ".join(f"`{k}`: {listed(values)}" for k, values in spec.axes.items()) or "nothing (one point)"
    data = spec.data
    held_out = ", ".join(data.held_out_clusters) or f"the test tasks of split '{data.split}'"
    return (f"**ablate sweep `{spec.name}`**: varies {axes}, over seeds {', '.join(map(str, spec.seeds))} "
            f"({len(prepared.cells)} cells). Model `{spec.model}`, data `{data.source}`, evaluated on {held_out}.\n\n"
            f"Reproduce: `ablate sweep {prepared.spec_file}`. The parent run holds the resolved spec, the plan, the "
            "baselines and the report (its description, its `curve/...` metrics and the `report/` figures).")


def save_task_indexes(cells: list[Cell], cache_dir: Path, tokenizers: bool = True) -> None:
    """Index each data source of the sweep once, here, before any cell starts: the cells, later
    sweeps, `validate` and `plan` read it instead of every task file. The word-level tokenizer
    of the presets is built here too (once per data source), not by the first cell on each node."""
    from ablate.data.cell_data import open_library
    from ablate.data.tokenizer import task_dir_tokenizer
    from ablate.model import PRESETS

    sources = {(c.settings.data.source, c.settings.data.synthetic_seed) for c in cells}
    with_presets = {(c.settings.data.source, c.settings.data.synthetic_seed) for c in cells if c.settings.model in PRESETS}
    for source, seed in sorted(sources):
        library = open_library(source, seed, cache_dir)
        library.index
        if tokenizers and (source, seed) in with_presets:
            task_dir_tokenizer(library.root, cache_dir)


def log_baselines(store, parent_run_id: str, cell: Cell, cache_dir: Path) -> None:
    """Score the heuristic baselines once, on the sweep's test set (that of its first cell), into
    the parent run: an artifact the report reads, and metrics for the MLflow UI."""
    from ablate.baselines import BaselineScores, score_baselines
    from ablate.data.cell_data import open_cell_data

    data = open_cell_data(cell.settings, cache_dir)  # the test set exactly as the cell reads it
    scores = {name: BaselineScores.of(s) for name, s in score_baselines(data.test_pairs, data.cluster_of).items()}
    store.log_text(parent_run_id, json.dumps({k: v.model_dump() for k, v in scores.items()}, indent=1),
                   results.BASELINES_ARTIFACT)
    store.log_metrics(parent_run_id, {results.baseline_key(name, metric): value
                                      for name, s in scores.items() for metric, value in s.overall.items()})


def close_unfinished_runs(store, experiment_id: str, cells: list[Cell], outcomes, interrupted: bool) -> None:
    """Cells whose worker died (given up after retries) leave RUNNING runs: close them as FAILED with the
    error; after Ctrl-C, close the interrupted ones as KILLED."""
    runs = store.cell_runs(experiment_id)
    errors = {o.cell.id: o.error or "failed" for o in outcomes if o.status == CellStatus.FAILED}
    store.close_stale_runs({cid: runs.get(cid, []) for cid in errors}, status=RUN_FAILED, errors=errors)
    if interrupted:
        store.close_stale_runs({c.id: runs.get(c.id, []) for c in cells if c.id not in errors}, status=RUN_KILLED)

