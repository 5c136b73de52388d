"""Running cells on Ray Tune: one trial per cell, resumable checkpoints, progress and a summary.

The driver gives Tune the explicit list of cells to run (planning, naming and caching happen
before, without Ray); each trial runs the cell recipe in ablate/cell.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ablate.plan import Cell


@dataclass(frozen=True)
class RunContext:
    """Where a sweep's cells read and write; passed to every trial."""

    sweep: str
    output_dir: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    retry_seconds: float = 300.0


@dataclass
class CellOutcome:
    cell: Cell
    status: str  # "done" | "failed" | "interrupted"
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    log_path: str | None = None


def cell_trial(config: dict[str, Any]) -> None:
    """A Ray Tune function trainable: run one cell, resuming from Tune's checkpoint if there is one."""
    import torch
    from ray import tune

    from ablate.cell import CellPaths, run_cell
    from ablate.plan import CellSettings
    from ablate.track import CellRun
    from ablate.train import DivergedError

    cell_json, context = config["cell"], RunContext(**config["context"])
    cell = Cell(id=cell_json["id"], name=cell_json["name"], axis_values=cell_json["axis_values"],
                settings=CellSettings.model_validate(cell_json["settings"]))
    torch.set_num_threads(max(1, int(config["threads"])))

    run, resume_state = _resume(cell, context)
    if run is None:
        run = CellRun.start(context.tracking_uri, context.experiment_id, context.parent_run_id,
                            cell_id=cell.id, name=cell.name, sweep=context.sweep, axis_values=cell.axis_values,
                            settings=cell.settings.model_dump(mode="json"),
                            data_fingerprint=cell.settings.data_fingerprint, retry_seconds=context.retry_seconds)
        # A checkpoint holding only the run id: a retry after a crash reattaches this run.
        _report_checkpoint(cell.id, run.run_id, None, {"step": 0})

    def save_checkpoint(step: int, make_state) -> None:
        _report_checkpoint(cell.id, run.run_id, make_state(), {"step": step})

    try:
        metrics = run_cell(cell, CellPaths(cache_dir=Path(context.output_dir) / "cache"), run,
                           resume_state=resume_state, save_checkpoint=save_checkpoint)
    except Exception as exc:
        run.set_tag("ablate.error", f"{type(exc).__name__}: {exc}"[:5000])
        run.set_tag("ablate.diverged", str(isinstance(exc, DivergedError)).lower())
        run.finish("FAILED")
        raise
    run.finish("FINISHED")
    tune.report({**metrics, "cell_done": 1, "mlflow_run_id": run.run_id})


def _resume(cell: Cell, context: RunContext):
    """(run, training state) to continue: Tune's checkpoint when Tune retries this trial, else the
    cell's last checkpoint from an earlier, interrupted `ablate sweep` (e.g. killed with -9), unless
    that run already finished (`--force` starts afresh). (None, None) when there is nothing to resume."""
    import torch
    from ray import tune

    from ablate.track import CellRun

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        folder = Path(checkpoint.to_directory())
    else:
        folder = latest_checkpoint(Path(context.output_dir) / "ray", cell.id)
    if folder is None:
        return None, None
    run = CellRun(context.tracking_uri, (folder / "run_id.txt").read_text().strip(), context.retry_seconds)
    if run.status() == "FINISHED":
        return None, None
    state = torch.load(folder / "state.pt", weights_only=False) if (folder / "state.pt").is_file() else None
    run.reopen()
    run.set_tag("ablate.resumed_from_step", str(state["step"] if state else 0))
    return run, state


def _report_checkpoint(cell_id: str, run_id: str, state: dict | None, metrics: dict) -> None:
    import torch
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "run_id.txt").write_text(run_id)
        marker = {"cell_id": cell_id, "step": metrics["step"]}
        if state is not None:
            torch.save(state, Path(folder) / "state.pt")
            marker["state_bytes"] = (Path(folder) / "state.pt").stat().st_size
        (Path(folder) / "cell.json").write_text(json.dumps(marker))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def latest_checkpoint(ray_dir: Path, cell_id: str) -> Path | None:
    """The most advanced checkpoint of a cell among earlier Tune experiments of this sweep."""
    best, best_step = None, -1
    for marker in ray_dir.glob("*/*/checkpoint_*/cell.json"):
        try:
            saved = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a checkpoint cut short by a crash
        if saved.get("cell_id") == cell_id and saved.get("step", -1) > best_step and _complete(marker.parent, saved):
            best, best_step = marker.parent, saved["step"]
    return best


def _complete(folder: Path, saved: dict) -> bool:
    """Whether a checkpoint folder was copied whole: Tune copies it file by file, so a crash can
    leave cell.json beside a missing run id or a truncated training state."""
    if not (folder / "run_id.txt").is_file():
        return False
    if "state_bytes" not in saved:
        return True  # the cell's first checkpoint: only the run id
    state = folder / "state.pt"
    return state.is_file() and state.stat().st_size == saved["state_bytes"]


def _progress_callback(total: int, cached: int, concurrency: int, out: TextIO):
    from ray.tune import Callback

    class Progress(Callback):
        """Prints cells done / cached / failed / total, the running cells and an ETA."""

        def __init__(self) -> None:
            self.started: dict[str, float] = {}
            self.durations: list[float] = []
            self.done = self.failed = 0
            self.names: dict[str, str] = {}

        def _line(self, event: str) -> None:
            finished = self.done + self.failed
            remaining = total - cached - finished
            eta = ""
            if self.durations and remaining > 0:
                seconds = sum(self.durations) / len(self.durations) * remaining / max(1, concurrency)
                eta = f" | ETA {int(seconds // 60)}m{int(seconds % 60):02d}s"
            running = ", ".join(self.names[t] for t in self.started) or "-"
            print(f"[{finished + cached}/{total}] done {self.done}, cached {cached}, failed {self.failed}"
                  f" | running: {running}{eta} | {event}", file=out, flush=True)

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started[trial.trial_id] = time.time()
            self.names[trial.trial_id] = trial.config["cell"]["name"]
            self._line(f"started {self.names[trial.trial_id]}")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._line(f"worker lost; retrying {self.names.get(trial.trial_id, trial.trial_id)} from its checkpoint")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.durations.append(time.time() - self.started.pop(trial.trial_id, time.time()))
            self.done += 1
            self._line(f"finished {self.names[trial.trial_id]}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.started.pop(trial.trial_id, None)
            self.failed += 1
            self._line(f"FAILED {self.names.get(trial.trial_id, trial.trial_id)}")

    return Progress()


@contextmanager
def ray_runtime(address: str | None):
    """Connect to the Ray cluster at `address`, or start a local runtime (stopped on exit).

    The local runtime serves on 127.0.0.1 only: Ray's single-machine mode (read when ray is first
    imported, and inherited by its workers) keeps every Ray service on the loopback address.
    """
    if not address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from ablate.errors import AblateError

    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # address="local": always a fresh runtime of our own, without the dashboard.
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        cause = exc.__cause__ or exc
        raise AblateError(f"cannot connect to the Ray cluster at '{address}' ({str(cause).splitlines()[0][:300]}).",
                          field="--address",
                          fix="check the address (ray status on the head node); for a cluster with token "
                              "authentication set RAY_AUTH_MODE=token and make its token available "
                              "(~/.ray/auth_token or RAY_AUTH_TOKEN).") from None
    try:
        yield
    finally:
        ray.shutdown()


def run_cells(cells: list[Cell], context: RunContext, *, cpus_per_cell: float, gpus_per_cell: float,
              max_concurrent: int, max_failures: int, total: int, cached: int,
              out: TextIO = sys.stdout) -> list[CellOutcome]:
    """Run `cells` as Tune trials on the connected Ray runtime (see `ray_runtime`)."""
    # Every cell checkpoints once at its start (the MLflow run id, for retries); Tune warns about that.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # ablate prints its own progress; Tune's console tables (its "new output") would drown it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import logging

    from ray import tune

    # Tune's own "resume with Tuner.restore(...)" advice does not apply: re-running `ablate sweep` resumes.
    logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)

    try:
        trainable = tune.with_resources(cell_trial, {"cpu": cpus_per_cell, "gpu": gpus_per_cell})
        storage = Path(context.output_dir).resolve() / "ray"
        tuner = tune.Tuner(
            trainable,
            param_space={"cell": tune.grid_search([c.to_json() for c in cells]),
                         "context": context.__dict__, "threads": max(1, int(cpus_per_cell))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=False),
            run_config=tune.RunConfig(
                name=f"{context.sweep}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(storage),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[_progress_callback(total, cached, max_concurrent, out)],
                verbose=0,
            ),
        )
        results = tuner.fit()
        by_id = {c.id: c for c in cells}
        outcomes = []
        for result in results:
            cell = by_id[result.config["cell"]["id"]]
            if result.error is None and (result.metrics or {}).get("cell_done"):
                metrics = {k: v for k, v in result.metrics.items() if k in ("exact_match", "rouge1", "rougeL")}
                outcomes.append(CellOutcome(cell, "done", metrics))
            elif result.error is None:  # stopped by Ctrl-C before it finished
                outcomes.append(CellOutcome(cell, "interrupted"))
            else:
                log = Path(result.path) / "error.txt" if result.path else None
                text = log.read_text() if log is not None and log.is_file() else str(result.error or "no result")
                outcomes.append(CellOutcome(cell, "failed", error=_last_line(text)[:300],
                                            log_path=str(log) if log is not None and log.is_file() else result.path))
        return outcomes
    finally:
        logging.getLogger("ray.tune.tune").setLevel(logging.INFO)


def _last_line(text: str) -> str:
    """The line of a traceback that names the exception."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(path.suffix + ".tmp")
    scratch.write_text(json.dumps(payload, indent=2))
    scratch.replace(path)
