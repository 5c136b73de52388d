"""What runs inside a Ray Tune trial (a worker process): one cell, tracked and resumable.

The driver side (ablate/schedule.py) gives each trial a cell and a `TrialContext` in its config.
The trial reattaches the cell's MLflow run when it resumes (Tune's own retry after a lost
worker, or a re-run after `ablate sweep` was killed), runs the cell recipe (ablate/cell.py) and
reports one of two final results: `CELL_DONE` or `CELL_FAILED`. An exception inside the cell is
a result, not a crash: the run is closed FAILED with the error at once and Tune does not retry
it; only a worker that dies (the process is gone) is retried, from its last checkpoint.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ablate.errors import error_text
from ablate.fold import FOLDED
from ablate.plan import Cell
from ablate.status import RUN_FINISHED

# Keys of the results a trial reports to the driver.
CELL_DONE, CELL_FAILED, ERROR, RUN_ID, STEP = "cell_done", "cell_failed", "error", "mlflow_run_id", "step"
FOLDED_SCORED = "folded_scored"  # of a failed trial: the folded cells its training scored before it failed
NODE = "node"  # "<host> <Ray node id, first 8>": where the cell ran, for the sweep's summary


@dataclass(frozen=True)
class TrialContext:
    """Where a sweep's cells read and write; passed to every trial as plain data."""

    sweep: str
    output_dir: str  # the driver's output folder; its cache/ is rebuilt where a node lacks it
    storage_path: str  # Tune's storage: checkpoints every node reaches (a shared folder or a URI)
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    retry_seconds: float
    threads: int
    use_gpu: bool  # resources.gpus_per_cell > 0: run on the GPU Ray assigned (CUDA_VISIBLE_DEVICES)
    reasons: dict[str, str] | None = None  # cell id -> why an adaptive refinement proposed it (a tag on its run)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cell_trial(config: dict[str, Any]) -> None:
    """A Ray Tune function trainable: run one cell, resuming from a checkpoint if there is one."""
    entered, entered_at = time.perf_counter(), time.time()
    import torch
    from ray import tune

    from ablate import results
    from ablate.cell import CellPlace, cell_times, run_cell
    from ablate.cell_clock import CellClock
    from ablate.track import CellTracker, RetryPolicy
    from ablate.train import DivergedError

    cell, context = Cell.from_json(config["cell"]), TrialContext(**config["context"])
    _warm_up(cell, context)
    tracker = None
    clock = CellClock(lambda: tracker.store_seconds if tracker is not None else 0.0)
    clock.add("startup", time.perf_counter() - entered)
    with clock.part("setup"):
        retry = RetryPolicy(context.retry_seconds)
        torch.set_num_threads(context.threads)

        tracker, resume_state, retried = _resume(cell, context, retry)
        if tracker is None:
            reasons = context.reasons or {}
            tracker = CellTracker.start(context.tracking_uri, context.experiment_id, context.parent_run_id,
                                        cell_id=cell.id, name=cell.name, sweep=context.sweep,
                                        axis_values=cell.axis_values, settings=cell.settings.model_dump(mode="json"),
                                        data_fingerprint=cell.settings.data_fingerprint, retry=retry,
                                        tags={results.REFINE_REASON: reasons[cell.id]} if cell.id in reasons else None)
            # A checkpoint holding only the run id: a retry after a lost worker reattaches this run.
            _report_checkpoint(cell.id, tracker.run_id, 0, None)

        node = _node()
        tracker.set_tags({results.NODE_ID: node.split()[-1], results.WORKER_PID: str(os.getpid())})

    point_runs: list = []  # the folded cells' runs as training reaches them
    points = _fold_points(cell, config["cell"].get(FOLDED, []), context, retry,
                          (resume_state or {}).get("step", 0) if retried else 0, node, point_runs)
    kept = resume_for_folds(resume_state, retried, points)
    if kept is None and resume_state is not None:
        tracker.set_tag(results.RESUMED_FROM_STEP, "0")  # trained again from the start, to score a folded cell
    resume_state = kept

    def save_checkpoint(step: int, make_state) -> None:
        _report_checkpoint(cell.id, tracker.run_id, step, make_state())

    try:
        place = CellPlace(cache_dir=_cache_dir(context), device="cuda" if context.use_gpu else "cpu")
        with tracker.system_metrics():
            metrics = run_cell(cell, place, tracker, resume_state=resume_state, save_checkpoint=save_checkpoint,
                               clock=clock, fold_points=points)
    except Exception as exc:  # the cell failed: record it once; Tune must not retry it
        trace = traceback.format_exc()
        tracker.log_text(trace, results.ERROR_ARTIFACT)
        tracker.fail(exc, diverged=isinstance(exc, DivergedError))
        scored = sum(run.closed_as == RUN_FINISHED for run in point_runs)  # before the training failed
        tune.report({CELL_FAILED: 1, ERROR: error_text(exc), FOLDED_SCORED: scored,
                     RUN_ID: tracker.run_id, NODE: node})
        return
    tracker.finish(RUN_FINISHED)
    tune.report({**metrics, **cell_times(clock), CELL_DONE: 1, RUN_ID: tracker.run_id, NODE: node,
                 results.TRIAL_ENTERED_AT: entered_at})


def _warm_up(cell: Cell, context: TrialContext) -> None:
    """What a worker's first cell would otherwise pay inside its parts, paid as its start-up: the
    modules transformers imports lazily (the preset's model family, the fast tokenizer; 4 s of
    a first t5-tiny build against 0.25 s) and the tracking store's first connection (a SQLite
    store checks its schema once per process: 2 s). A reused worker has them already."""
    import transformers

    from ablate.model import PRESETS

    preset = PRESETS.get(cell.settings.model)
    if preset is not None:
        getattr(transformers, "T5ForConditionalGeneration" if preset.family == "t5" else "LlamaForCausalLM")
    getattr(transformers, "PreTrainedTokenizerFast")
    _connect_once(context.tracking_uri, context.experiment_id)


@functools.lru_cache(maxsize=None)
def _connect_once(tracking_uri: str, experiment_id: str) -> None:
    """The store's first connection in this worker process (later trials of a reused worker skip it)."""
    from ablate.track.client import mlflow_client

    try:
        mlflow_client(tracking_uri).get_experiment(experiment_id)
    except Exception:  # only a warm-up: the set-up's own calls retry the store and report what fails
        pass


def resume_for_folds(resume_state: dict | None, retried: bool, points: tuple) -> dict | None:
    """The training state to resume from, given the cells to score on the way: a re-run's folded
    cells are the ones not scored yet, and one of no more steps than the checkpoint can only be
    scored by training again from the start (Tune's own retry scored them before its checkpoint)."""
    if resume_state is not None and not retried and any(p.cell.settings.train.steps <= resume_state["step"]
                                                        for p in points):
        return None
    return resume_state


def _fold_points(cell: Cell, folded: list[dict], context: TrialContext, retry, scored_to: int, node: str,
                 started: list | None = None) -> tuple:
    """The cells scored on the way through this cell's training, less those of no more than
    `scored_to` steps (Tune retrying this trial from a checkpoint of that step: it scored them,
    and finished their runs, before it wrote the checkpoint). Each run started is added to `started`."""
    from ablate import results
    from ablate.cell import FoldPoint
    from ablate.track import CellTracker

    points = [Cell.from_json(saved) for saved in folded]

    def start_run(point: Cell):
        run = CellTracker.start(context.tracking_uri, context.experiment_id, context.parent_run_id,
                                cell_id=point.id, name=point.name, sweep=context.sweep,
                                axis_values=point.axis_values, settings=point.settings.model_dump(mode="json"),
                                data_fingerprint=point.settings.data_fingerprint, retry=retry,
                                tags={results.FOLDED_INTO: cell.id, results.NODE_ID: node.split()[-1],
                                      results.WORKER_PID: str(os.getpid())})
        if started is not None:
            started.append(run)
        return run

    return tuple(FoldPoint(point, functools.partial(start_run, point))
                 for point in points if point.settings.train.steps > scored_to)


def _cache_dir(context: TrialContext) -> Path:
    """The data cache: the driver's output folder where this node has it (one machine, or a shared
    mount), else a folder of this node's own; either way rebuilt when missing."""
    shared = Path(context.output_dir) / "cache"
    try:
        shared.mkdir(parents=True, exist_ok=True)
        return shared
    except OSError:
        return Path(tempfile.gettempdir()) / "ablate-cache" / context.sweep


def _node() -> str:
    import socket

    import ray

    return f"{socket.gethostname()} {ray.get_runtime_context().get_node_id()[:8]}"


def _resume(cell: Cell, context: TrialContext, retry):
    """(tracker, training state, whether Tune is retrying this trial) to continue: Tune's checkpoint
    when Tune retries this trial, else the cell's last checkpoint from an earlier, interrupted
    `ablate sweep` (e.g. killed with -9), unless that run already finished (`--force` starts
    afresh). (None, None, False): nothing to resume."""
    from ray import tune

    from ablate import results
    from ablate.checkpoint import latest_checkpoint, read_run_id, read_state, read_step
    from ablate.track import CellTracker

    checkpoint = tune.get_checkpoint()
    retried = checkpoint is not None
    if retried:
        folder = Path(checkpoint.to_directory())
    else:
        folder = latest_checkpoint(context.storage_path, cell.id)
    if folder is None:
        return None, None, False
    tracker = CellTracker(context.tracking_uri, read_run_id(folder), retry)
    if tracker.status() == RUN_FINISHED:
        return None, None, False
    state = read_state(folder)
    tracker.reopen()
    tracker.set_tag(results.RESUMED_FROM_STEP, str(read_step(folder) if state else 0))
    return tracker, state, retried


def _report_checkpoint(cell_id: str, run_id: str, step: int, state: dict | None) -> None:
    from ray import tune

    from ablate.checkpoint import write_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        write_checkpoint(Path(folder), cell_id, run_id, step, state)
        tune.report({STEP: step}, checkpoint=tune.Checkpoint.from_directory(folder))
