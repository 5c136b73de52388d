"""The driver's side of Ray Tune: one trial per cell, progress with an ETA, and each cell's outcome.

The driver gives Tune the explicit list of cells to run (planning, naming and caching happen
before, without Ray); each trial runs `ablate.trial.cell_trial` in a worker.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ablate.fold import FOLDED, FoldGroup
from ablate.plan import Cell
from ablate.errors import SHORT_ERROR_LENGTH, last_line
from ablate.results import ERROR_ARTIFACT, TRIAL_ENTERED_AT, is_cell_time_key, is_metric
from ablate.status import CellStatus
from ablate.spec import ResourcesSpec
from ablate.trial import (CELL_DONE, CELL_FAILED, ERROR, FOLDED_SCORED, NODE, RUN_ID, TrialContext,
                          cell_trial)


@dataclass
class CellOutcome:
    cell: Cell
    status: CellStatus  # DONE, FAILED or INTERRUPTED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    log_path: str | None = None
    node: str | None = None  # "<host> <Ray node id>" the cell ran on
    run_id: str | None = None  # its MLflow child run
    seconds: float | None = None  # its wall time as the driver saw it (retried attempts included)
    launch_seconds: float | None = None  # its last attempt's start to the trial's first line (results.CELL_LAUNCH)
    times: dict[str, float] = field(default_factory=dict)  # where the cell's time went (results.cell_time_key)


def _progress_callback(total: int, cached: int, concurrency: int, stream: TextIO):
    from ray.tune import Callback

    class Progress(Callback):
        """Prints cells done / cached / failed / total, the running cells and an ETA."""

        def __init__(self, out: TextIO) -> None:
            self.out = out
            self.started: dict[str, float] = {}
            self.durations: list[float] = []  # per finished trial
            self.cells_timed = 0  # the cells those trials scored (a folded trial scores several)
            self.done = self.failed = 0
            self.names: dict[str, str] = {}
            self.seconds: dict[str, float] = {}  # by cell id: wall time from trial start to its end
            self.last_start: dict[str, float] = {}  # by cell id: when its last attempt started
            self.most_at_once = 0  # the concurrency the cluster's resources actually allowed

        def _stop_clock(self, trial) -> float:
            elapsed = time.time() - self.started.pop(trial.trial_id, time.time())
            cell_id = trial.config["cell"]["id"]
            self.seconds[cell_id] = self.seconds.get(cell_id, 0.0) + elapsed
            return elapsed

        def _line(self, event: str) -> None:
            finished = self.done + self.failed
            remaining = total - cached - finished
            eta = ""
            if self.durations and remaining > 0:
                seconds = sum(self.durations) / self.cells_timed * remaining / max(1, concurrency)
                eta = f" | ETA {int(seconds // 60)}m{int(seconds % 60):02d}s"
            running = ", ".join(self.names[t] for t in self.started) or "-"
            print(f"[{finished + cached}/{total}] done {self.done}, cached {cached}, failed {self.failed}"
                  f" | running: {running}{eta} | {event}", file=self.out or sys.stdout, flush=True)

        def __getstate__(self):
            # Tune pickles its callbacks with the experiment's state: a stream (a test's captured
            # stdout, a file) does not pickle, and is only ever written here, in the driver.
            return {**self.__dict__, "out": None}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started[trial.trial_id] = self.last_start[trial.config["cell"]["id"]] = time.time()
            self.most_at_once = max(self.most_at_once, len(self.started))
            self.names[trial.trial_id] = trial.config["cell"]["name"]
            self._line(f"started {self.names[trial.trial_id]}")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._stop_clock(trial)
            self._line(f"worker lost; retrying {self.names.get(trial.trial_id, trial.trial_id)} from its checkpoint")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.durations.append(self._stop_clock(trial))
            cells = _cells_of(trial.config)
            self.cells_timed += cells
            result = trial.last_result or {}
            name = self.names[trial.trial_id] + (f" and {cells - 1} folded cell(s)" if cells > 1 else "")
            if result.get(CELL_FAILED):
                scored = int(result.get(FOLDED_SCORED, 0))  # folded cells scored before the training failed
                self.done += scored
                self.failed += cells - scored
                before = f" ({scored} folded cell(s) scored before it)" if scored else ""
                self._line(f"FAILED {name}{before}: {result.get(ERROR, '')[:SHORT_ERROR_LENGTH]}")
            else:
                self.done += cells
                self._line(f"finished {name}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._stop_clock(trial)
            self.failed += _cells_of(trial.config)
            self._line(f"FAILED {self.names.get(trial.trial_id, trial.trial_id)} (worker lost, retries used up)")

    return Progress(stream)


def _cells_of(config: dict) -> int:
    """The cells a trial scores: its own, and those folded into its training (ablate.fold)."""
    return 1 + len(config["cell"].get(FOLDED, []))


@dataclass
class Scheduled:
    outcomes: list[CellOutcome]
    most_at_once: int  # the most cells that ran at the same time


def schedule_cells(groups: list[FoldGroup], context: TrialContext, resources: ResourcesSpec, *, total: int,
                   cached: int, out: TextIO = sys.stdout) -> Scheduled:
    """Run a Tune trial per group (its lead cell, scoring the group's folded cells on the way: ablate.fold)
    on the connected Ray runtime (see `ablate.ray_runtime`); the outcomes are the leads'."""
    # Every cell checkpoints once at its start (the MLflow run id, for retries); Tune warns about that.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # ablate prints its own progress; Tune's console tables (its "new output") would drown it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's JSON and CSV result files, without its TensorBoard logger: importing tensorboardX (and
    # torch with it) in the driver delayed the first cell by 2 s, and MLflow holds the curves.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import logging

    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    # Tune's own "resume with Tuner.restore(...)" advice does not apply: re-running `ablate sweep` resumes.
    logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)

    progress = _progress_callback(total, cached, resources.max_concurrent, out)
    try:
        trainable = tune.with_resources(cell_trial, {"cpu": resources.cpus_per_cell, "gpu": resources.gpus_per_cell})
        tuner = tune.Tuner(
            trainable,
            param_space={"cell": tune.grid_search([g.trial_entry() for g in groups]), "context": context.to_json()},
            # A finished cell's worker runs the next one: torch, transformers and MLflow stay imported.
            tune_config=tune.TuneConfig(max_concurrent_trials=resources.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"{context.sweep}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=context.storage_path,
                # Only a lost worker reaches Tune as an error (a cell's own exception is a result).
                failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[progress, JsonLoggerCallback(), CSVLoggerCallback()],
                verbose=0,
            ),
        )
        results = tuner.fit()
        by_id = {g.lead.id: g.lead for g in groups}
        outcomes = [_outcome(by_id[result.config["cell"]["id"]], result) for result in results]
        for outcome, result in zip(outcomes, results):
            outcome.seconds = progress.seconds.get(outcome.cell.id)
            entered_at, started_at = (result.metrics or {}).get(TRIAL_ENTERED_AT), progress.last_start.get(outcome.cell.id)
            if entered_at is not None and started_at is not None:
                # The trial's clock and the driver's are one machine's, or NTP-close on a cluster.
                outcome.launch_seconds = max(0.0, entered_at - started_at)
        return Scheduled(outcomes, progress.most_at_once)
    finally:
        logging.getLogger("ray.tune.tune").setLevel(logging.INFO)


def _outcome(cell: Cell, result) -> CellOutcome:
    metrics = result.metrics or {}
    if result.error is None and metrics.get(CELL_DONE):
        return CellOutcome(cell, CellStatus.DONE, {k: v for k, v in metrics.items() if is_metric(k)}, node=metrics.get(NODE),
                           run_id=metrics.get(RUN_ID), times={k: v for k, v in metrics.items() if is_cell_time_key(k)})
    if result.error is None and metrics.get(CELL_FAILED):
        return CellOutcome(cell, CellStatus.FAILED, error=metrics.get(ERROR, "failed"),
                           log_path=f"{ERROR_ARTIFACT} of MLflow run {metrics.get(RUN_ID)}", node=metrics.get(NODE),
                           run_id=metrics.get(RUN_ID))
    if result.error is None:  # stopped by Ctrl-C before it finished
        return CellOutcome(cell, CellStatus.INTERRUPTED)
    log = Path(result.path) / "error.txt" if result.path else None
    text = log.read_text() if log is not None and log.is_file() else str(result.error or "no result")
    return CellOutcome(cell, CellStatus.FAILED, error=last_line(text),
                       log_path=str(log) if log is not None and log.is_file() else result.path)
