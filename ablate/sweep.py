"""The driver of `ablate sweep`: spec -> plan -> checks -> MLflow parent run -> Ray Tune -> summary."""

from __future__ import annotations

import fcntl
from collections import Counter
import json
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ablate import results
from ablate.cost import seconds_per_step
from ablate.data.sources import check_source, source_fingerprint
from ablate.errors import AblateError
from ablate.files import check_output_folder
from ablate.model import is_baseline
from ablate.plan import Cell, checked_grid
from ablate.spec import SweepSpec, load_spec, spec_to_yaml
from ablate.superseded import mark_superseded
from ablate.track import RetryPolicy
from ablate.train import total_steps
from ablate.validate import check_cells, device_errors, local_gpu_count


@dataclass(frozen=True)
class PreparedSweep:
    spec: SweepSpec
    spec_file: str
    cells: list[Cell]
    tracking_uri: str
    experiment: str
    output_dir: Path
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the task selection removed (ablate.validate.selection_note)

    @property
    def storage_path(self) -> str:
        """Where Tune keeps the trial folders and checkpoints: the spec's, or a folder on this machine."""
        return self.spec.resources.storage_path or str(self.output_dir.resolve() / "ray")

    def print_warnings(self, out: TextIO) -> None:
        for warning in self.warnings:
            print(f"Warning: {warning}", file=out)


def prepare_sweep(spec_file: str, overrides: list[str], *, tracking_uri: str | None = None,
                  output_dir: str | None = None, workdir: Path | None = None,
                  address: str | None = None) -> PreparedSweep:
    """Load, expand and check a spec; raises one AblateError listing every problem. Writes nothing.
    Without a cluster `address`, GPU requests are checked against this machine."""
    from ablate.track import resolve_tracking_uri

    workdir = workdir or Path.cwd()
    spec = load_spec(spec_file, overrides, workdir)
    try:
        check_source(spec.data.source)
    except AblateError as exc:
        raise AblateError(f"'{spec.data.source}': {exc.message}", file=spec_file, field="data.source",
                          fix=exc.fix) from None
    fingerprint = source_fingerprint(spec.data.source, spec.data.synthetic_seed)
    cells, errors = checked_grid(spec, fingerprint)
    if errors:
        raise _problems(spec_file, errors)
    cells = list({c.id: c for c in cells}.values())  # equal settings run once
    out = Path(output_dir) if output_dir else workdir / "ablate_runs" / spec.name
    check_output_folder(out, "--out" if output_dir else "name")
    checks = check_cells(cells, out / "cache")
    gpus = spec.resources.gpus_per_cell
    for error in device_errors(cells, gpus, None if address or gpus == 0 else local_gpu_count()):
        checks.error(error)
    if checks.errors:
        raise _problems(spec_file, checks.errors)
    uri = resolve_tracking_uri(tracking_uri or spec.tracking.tracking_uri, workdir)
    return PreparedSweep(spec, spec_file, cells, uri, spec.tracking.experiment or spec.name, out,
                         tuple(checks.warnings), tuple(checks.notes))


def _problems(spec_file: str, errors: list[str]) -> AblateError:
    listing = "\n".join(f"- {e}" for e in errors)
    return AblateError(f"{len(errors)} problem(s) with the planned cells:\n{listing}", file=spec_file,
                       fix="correct the spec (or --set) as each line says; `ablate validate SPEC` re-checks it.")


def estimate_seconds(cell: Cell) -> float:
    """A rough CPU estimate from the model's step time on a 2-core machine (ablate/cost.py)."""
    settings = cell.settings
    if is_baseline(settings.model):
        return 2.0
    per_step = seconds_per_step(settings.model) * settings.train.batch_size / 16
    examples = settings.data.instances_per_task * (settings.data.num_train_tasks or 40)
    evaluations = len(settings.test_encodings) * 20 * min(settings.eval.instances_per_task, 100)
    return 8 + per_step * total_steps(settings.train, examples) + evaluations * per_step / 16


def sweep_estimate(cells: list[Cell], concurrency: int) -> tuple[float, float]:
    """(cell-seconds, wall seconds) of running `cells`, `concurrency` at a time, on this machine's CPU."""
    cell_seconds = sum(estimate_seconds(c) for c in cells)
    return cell_seconds, cell_seconds / max(1, min(concurrency, len(cells) or 1))


def read_cell_statuses(tracking_uri: str, experiment: str, retry_seconds: float) -> dict[str, str]:
    """Status (done / failed / to run) of every cell with a run in the experiment; reads, never
    creates, the store."""
    from ablate.track import Store, cell_status, check_tracking_uri

    check_tracking_uri(tracking_uri)  # seconds, not MLflow's minutes of retries, for a dead server
    store = Store(tracking_uri, RetryPolicy(retry_seconds))
    return {cid: cell_status(runs) for cid, runs in store.cell_runs(store.find_experiment(experiment)).items()}


class StatusPrefetch:
    """`read_cell_statuses` in a forked process, started before planning: importing MLflow and
    opening its store take ~3 s, as long as planning a large grid, and the two run side by side.
    `result()` is None when the child failed; the caller then reads in-process, which raises the
    store's error with its fix."""

    def __init__(self, tracking_uri: str, experiment: str, retry_seconds: float) -> None:
        import multiprocessing

        self._receiver, sender = multiprocessing.Pipe(duplex=False)
        context = multiprocessing.get_context("fork")
        self._process = context.Process(target=self._read, args=(sender, tracking_uri, experiment, retry_seconds),
                                        daemon=True)
        self._process.start()
        sender.close()

    @staticmethod
    def _read(sender, tracking_uri: str, experiment: str, retry_seconds: float) -> None:
        try:
            sender.send(read_cell_statuses(tracking_uri, experiment, retry_seconds))
        except BaseException:  # noqa: BLE001 - any failure: the parent reads again and reports it
            sender.send(None)

    def result(self, timeout: float = 60.0) -> dict[str, str] | None:
        try:
            statuses = self._receiver.recv() if self._receiver.poll(timeout) else None
        except EOFError:
            statuses = None
        self._process.join(timeout=1)
        if self._process.is_alive():
            self._process.kill()
        return statuses


def start_status_prefetch(spec_file: str, overrides: list[str], tracking_uri: str | None,
                          workdir: Path | None = None) -> StatusPrefetch | None:
    """A prefetch of the statuses of the spec's experiment, or None where it cannot start (a spec
    that does not load: planning reports that; a platform without fork)."""
    from ablate.track import resolve_tracking_uri

    if not sys.platform.startswith("linux"):
        return None
    workdir = workdir or Path.cwd()
    try:
        spec = load_spec(spec_file, overrides, workdir)
    except AblateError:
        return None
    uri = resolve_tracking_uri(tracking_uri or spec.tracking.tracking_uri, workdir)
    return StatusPrefetch(uri, spec.tracking.experiment or spec.name, spec.tracking.retry_seconds)


def cell_statuses(prepared: PreparedSweep, prefetch: StatusPrefetch | None = None) -> dict[str, str]:
    """Status per cell id from the MLflow store (done / failed / to run)."""
    statuses = prefetch.result() if prefetch is not None else None
    if statuses is None:
        statuses = read_cell_statuses(prepared.tracking_uri, prepared.experiment, prepared.spec.tracking.retry_seconds)
    return {c.id: statuses.get(c.id, "to run") for c in prepared.cells}


def cells_to_run(cells: list[Cell], statuses: dict[str, str], force: bool = False) -> list[Cell]:
    """The cells a sweep trains: every one not done in MLflow (all of them with --force)."""
    return [c for c in cells if force or statuses.get(c.id, "to run") != "done"]


def plan_report(prepared: PreparedSweep, prefetch: StatusPrefetch | None = None) -> dict:
    statuses = cell_statuses(prepared, prefetch)
    cells = [{"id": c.id, "name": c.name, "axis_values": c.axis_values, "status": statuses[c.id],
              "test_encodings": c.settings.test_encodings, "estimated_seconds": round(estimate_seconds(c), 1)}
             for c in prepared.cells]
    cell_seconds, wall_seconds = sweep_estimate(cells_to_run(prepared.cells, statuses),
                                                prepared.spec.resources.max_concurrent)
    counts = {status: sum(c["status"] == status for c in cells) for status in ("done", "failed", "to run")}
    return {"sweep": prepared.spec.name, "experiment": prepared.experiment, "tracking_uri": prepared.tracking_uri,
            "total": len(cells), "done": counts["done"], "failed": counts["failed"], "to_run": counts["to run"],
            "cells": cells, "warnings": list(prepared.warnings), "notes": list(prepared.notes),
            "estimate": {"cell_seconds": round(cell_seconds, 1), "wall_seconds": round(wall_seconds, 1)}}


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
    minutes = report["estimate"]["wall_seconds"] / 60
    print(f"Estimated cost of the {report['failed'] + report['to_run']} cells not done: "
          f"~{report['estimate']['cell_seconds'] / 60:.1f} cell-minutes, ~{minutes:.1f} minutes of wall time here.",
          file=out)


@dataclass
class SweepTiming:
    """Where a sweep's wall time went: its phases (setup and Ray's start overlap), and the cells'
    own wall times (as the driver saw them) against it. `efficiency` is the wall time over the
    ideal, the cells' time spread over the cells that ran at once: 1.0 means no time was lost
    around the cells (start-up, scheduling, report, an idle slot at the end)."""

    began: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)  # results.TIMING_PHASES -> seconds
    total: float = 0.0  # set by `stop`
    cell_seconds: float = 0.0
    concurrency: int = 0

    @contextmanager
    def phase(self, name: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - began

    def stop(self, outcomes) -> None:
        self.total = time.perf_counter() - self.began
        self.cell_seconds = sum(o.seconds for o in outcomes if o.seconds is not None)

    @property
    def efficiency(self) -> float | None:
        if not self.cell_seconds or not self.concurrency:
            return None
        return self.total / (self.cell_seconds / self.concurrency)

    def metrics(self) -> dict[str, float]:
        metrics = {results.timing_key(name): seconds for name, seconds in self.phases.items()}
        metrics.update({results.TIMING_TOTAL: self.total, results.TIMING_CELL_SUM: self.cell_seconds,
                        results.TIMING_CONCURRENCY: self.concurrency})
        if self.efficiency is not None:
            metrics[results.TIMING_EFFICIENCY] = self.efficiency
        return metrics

    def summary(self) -> str:
        phases = ", ".join(f"{name.replace('_', ' ')} {self.phases[name]:.1f} s"
                           for name in results.TIMING_PHASES if name in self.phases)
        line = f"Time: {self.total:.0f} s ({phases})"
        if self.efficiency is not None:
            line += (f"; the cells' own time {self.cell_seconds:.0f} s at {self.concurrency} at once, so the "
                     f"wall time is {self.efficiency:.2f}x the ideal")
        return line + "."


def overlapped(foreground, background):
    """Run `background()` in a thread while `foreground()` runs here; returns background's result
    (its exception, if any, is raised here once both are done). The sweep starts Ray (which must
    start on the main thread) while it prepares MLflow and the baselines."""
    import threading

    outcome: dict = {}

    def work():
        try:
            outcome["value"] = background()
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="ablate-setup", daemon=True)
    thread.start()
    try:
        foreground()
    finally:
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class SweepLock:
    """One `ablate sweep` per output folder at a time; a second one refuses with a clear message."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / ".lock"
        self.handle = None

    def __enter__(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise AblateError(f"another `ablate sweep` ({holder}) is running with this output folder.",
                              file=str(self.path), fix="wait for it to finish; its cells are not trained twice.") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def run_sweep(prepared: PreparedSweep, *, address: str | None = None, force: bool = False, yes: bool = False,
              out: TextIO | None = None, prefetch: StatusPrefetch | None = None) -> int:
    """Run every cell not already FINISHED in MLflow; returns 0 when all cells are done, 1 otherwise.
    `prefetch`: the cells' statuses, read while the sweep was planned."""
    from ablate.processes import ProcessRecord
    from ablate.ray_runtime import check_cluster_gpus, check_cluster_storage, check_storage, ray_runtime

    out = out or sys.stdout  # looked up now: a caller may have replaced sys.stdout since import
    from ablate.schedule import schedule_cells
    from ablate.track import Store, check_tracking_uri
    from ablate.trial import TrialContext

    spec = prepared.spec
    timing = SweepTiming()
    check_tracking_uri(prepared.tracking_uri)
    check_storage(prepared.storage_path)
    store = Store(prepared.tracking_uri, RetryPolicy(spec.tracking.retry_seconds))
    # Ray's local start takes seconds, mostly waiting on its processes: when nothing can stop the
    # sweep (no confirmation to ask) and the last run of this folder left cells to do, Ray starts
    # while the statuses are read and MLflow is prepared. Otherwise the cost comes first, from
    # reads only, so a sweep refused here has written nothing.
    start_early = (not address and (yes or not over_thresholds(prepared, prepared.cells))
                   and (force or not finished_last_time(prepared) >= {c.id for c in prepared.cells}))
    if not start_early:
        statuses = cell_statuses(prepared, prefetch)
        to_run = cells_to_run(prepared.cells, statuses, force)
        confirm_cost(prepared, to_run, yes, out)
    with SweepLock(prepared.output_dir), ExitStack() as ray_scope:
        record = ProcessRecord(prepared.output_dir / "processes.json")
        reaped = record.reap_leftovers()
        if reaped:
            print(f"Stopped {reaped} process(es) left running by an interrupted sweep.", file=out)

        def start_ray():
            with timing.phase("ray_start"):
                ray_scope.enter_context(ray_runtime(address, None if address else record))
                if address:
                    check_cluster_gpus(spec.resources.gpus_per_cell)
                    check_cluster_storage(prepared.tracking_uri, prepared.storage_path,
                                          spec.resources.storage_path is None)

        def set_up():
            with timing.phase("setup"):
                if start_early:  # the estimate, now that the statuses are known (no question to ask)
                    statuses = cell_statuses(prepared, prefetch)
                    confirm_cost(prepared, cells_to_run(prepared.cells, statuses, force), yes, out)
                return prepare_tracking(prepared, store, force, out)

        if address:  # connect first: a cluster that refuses us must not leave runs behind
            start_ray()
            tracked = set_up()
        elif start_early or to_run:
            tracked = overlapped(start_ray, set_up)
        else:
            tracked = set_up()
        experiment_id, parent_run_id, to_run = tracked.experiment_id, tracked.parent_run_id, tracked.to_run
        cached = len(prepared.cells) - len(to_run)
        print(f"Sweep '{spec.name}': {len(prepared.cells)} cells, {cached} cached, {len(to_run)} to run "
              f"(MLflow experiment '{prepared.experiment}', parent run {parent_run_id}).", file=out, flush=True)
        outcomes: list = []
        if to_run:
            context = TrialContext(sweep=spec.name, output_dir=str(prepared.output_dir.resolve()),
                                   tracking_uri=prepared.tracking_uri, experiment_id=experiment_id,
                                   parent_run_id=parent_run_id, retry_seconds=spec.tracking.retry_seconds,
                                   storage_path=prepared.storage_path,
                                   threads=max(1, int(spec.resources.cpus_per_cell)),
                                   use_gpu=spec.resources.gpus_per_cell > 0)
            try:
                with timing.phase("cells"):
                    scheduled = schedule_cells(longest_first(to_run), context, spec.resources,
                                               total=len(prepared.cells), cached=cached, out=out)
            except KeyboardInterrupt:
                outcomes = []
                interrupted = True
            else:
                outcomes = scheduled.outcomes
                timing.concurrency = scheduled.most_at_once
                interrupted = any(o.status == "interrupted" for o in outcomes)
            _close_unfinished_runs(store, experiment_id, to_run, outcomes, interrupted)
            if interrupted:
                print(f"\nInterrupted. Finished cells are saved in MLflow; interrupted cells were marked KILLED and "
                      f"resume from their last checkpoint. Resume with: ablate sweep {prepared.spec_file}", file=out)
                return 130
        failed = [o for o in outcomes if o.status == "failed"]
        counts = {"total": len(prepared.cells), "cached": cached, "done": len(outcomes) - len(failed),
                  "failed": len(failed)}
        store.finish_parent_run(parent_run_id, counts)
        ran = {c.id for c in to_run}
        write_json(prepared.output_dir / FINISHED_FILE, sorted(
            {c.id for c in prepared.cells if c.id not in ran} | {o.cell.id for o in outcomes if o.status == "done"}))
        print_summary(prepared, counts, outcomes, time.perf_counter() - timing.began, out)

        report_failed = []

        def report():
            with timing.phase("report"):
                if outcomes or not store.has_artifact(parent_run_id, results.report_artifact("report.json")):
                    if not write_report(prepared, out):
                        report_failed.append(True)
                else:  # nothing ran: the report the last sweep wrote still holds
                    print(f"Nothing ran, so the report is unchanged: {prepared.output_dir / 'report'} and the "
                          f"parent run's report/ (redraw it with: ablate report {prepared.spec_file}).", file=out)

        overlapped(ray_scope.close, report)  # Ray stops (on this thread, where it started) while the report is drawn
        timing.stop(outcomes)
        if report_failed:  # no report was made: its time is not a report time
            timing.phases.pop("report", None)
        log_timing(store, parent_run_id, timing, outcomes)
        print(timing.summary(), file=out)
        return 1 if failed else 0


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
    to_run: list[Cell]


def prepare_tracking(prepared: PreparedSweep, store, force: bool, out: TextIO) -> Tracked:
    """The sweep's MLflow experiment and parent run (runs left RUNNING by a crash closed first),
    its plan files, its task indexes and its baselines; which cells are left to run."""
    from ablate.track import cell_status

    spec = prepared.spec
    runs = store.cell_runs(store.find_experiment(prepared.experiment))
    statuses = {cid: cell_status(r) for cid, r in runs.items()}
    mark_superseded(store, runs, prepared.cells, out)
    experiment_id = store.ensure_experiment(prepared.experiment, describe_sweep(prepared))
    closed = store.close_stale_runs(runs)
    if closed:
        print(f"Closed {closed} run(s) left RUNNING by an interrupted sweep as KILLED.", file=out)
    prepared.print_warnings(out)
    plan_json = {"sweep": spec.name, "cells": [c.to_json() for c in prepared.cells]}
    write_json(prepared.output_dir / "plan.json", plan_json)
    (prepared.output_dir / "spec.resolved.yaml").write_text(spec_to_yaml(spec))
    parent_run_id = store.start_parent_run(experiment_id, spec.name, {
        results.SPEC_ARTIFACT: spec_to_yaml(spec), results.PLAN_ARTIFACT: json.dumps(plan_json, indent=1)})
    save_task_indexes(prepared.cells, prepared.output_dir / "cache")
    to_run = cells_to_run(prepared.cells, statuses, force)
    if to_run or not store.has_artifact(parent_run_id, results.BASELINES_ARTIFACT):
        log_baselines(store, parent_run_id, prepared.cells[0], prepared.output_dir / "cache")
    return Tracked(experiment_id, parent_run_id, to_run)


def longest_first(cells: list[Cell]) -> list[Cell]:
    """Cells in the order Tune starts them: the longest (by estimate) first, so that the sweep does
    not end with one long cell running alone while the other slots idle."""
    return sorted(cells, key=estimate_seconds, reverse=True)


def log_timing(store, parent_run_id: str, timing: SweepTiming, outcomes) -> None:
    """Each cell's wall time into its child run, and the sweep's timing into the parent run: the
    MLflow UI shows where the time went."""
    for outcome in outcomes:
        if outcome.run_id and outcome.seconds is not None:
            store.log_metrics(outcome.run_id, {results.CELL_WALL_SECONDS: outcome.seconds})
    store.log_metrics(parent_run_id, timing.metrics())


def over_thresholds(prepared: PreparedSweep, to_run: list[Cell]) -> bool:
    """Whether running these cells needs a confirmation (resources.confirm_over_cells / _hours)."""
    resources = prepared.spec.resources
    hours = sweep_estimate(to_run, resources.max_concurrent)[1] / 3600
    return len(to_run) > resources.confirm_over_cells or hours > resources.confirm_over_hours


def confirm_cost(prepared: PreparedSweep, to_run: list[Cell], yes: bool, out: TextIO) -> None:
    """Print the estimate; a sweep over the spec's thresholds goes ahead only with --yes (or a 'y'
    typed at a terminal), so a typo such as steps: 1e9 or a 100,000-cell grid costs nothing."""
    resources = prepared.spec.resources
    cell_seconds, wall_seconds = sweep_estimate(to_run, resources.max_concurrent)
    hours = wall_seconds / 3600
    print(f"Estimated cost of the {len(to_run)} cell(s) to run: ~{cell_seconds / 60:.1f} cell-minutes, "
          f"~{hours * 60:.1f} minutes of wall time at {resources.max_concurrent} at once (on this machine's CPU).",
          file=out, flush=True)
    if yes or not over_thresholds(prepared, to_run):
        return
    question = (f"{len(to_run)} cells and ~{hours:.1f} hours exceed resources.confirm_over_cells "
                f"({resources.confirm_over_cells}) or confirm_over_hours ({resources.confirm_over_hours:g})")
    if sys.stdin.isatty():
        answer = input(f"{question}. Go ahead? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
        raise AblateError("not started.", file=prepared.spec_file, fix="add --yes, or make the sweep smaller.")
    raise AblateError(f"{question}, and there is no terminal to ask.", file=prepared.spec_file,
                      field="resources.confirm_over_cells",
                      fix="add --yes to go ahead, make the sweep smaller, or raise the thresholds.")


def describe_sweep(prepared: PreparedSweep) -> str:
    """The experiment's description in the MLflow UI: what the sweep ablates and how to reproduce it."""
    from ablate.plan import format_value

    spec = prepared.spec
    axes = "; ".join(f"`{k}`: {', '.join(format_value(v) for v in values) if isinstance(values, list) else values}"
                     for k, values in spec.axes.items()) or "nothing (one point)"
    data = spec.data
    held_out = ", ".join(data.held_out_clusters) or f"the test tasks of split '{data.split}'"
    return (f"**ablate sweep `{spec.name}`**: varies {axes}, over seeds {', '.join(map(str, spec.seeds))} "
            f"({len(prepared.cells)} cells). Model `{spec.model}`, data `{data.source}`, evaluated on {held_out}.\n\n"
            f"Reproduce: `ablate sweep {prepared.spec_file}`. The parent run holds the resolved spec, the plan, the "
            "baselines and the report (its description, its `curve/...` metrics and the `report/` figures).")


def save_task_indexes(cells: list[Cell], cache_dir: Path) -> None:
    """Index each data source of the sweep once, here, before any cell starts: the cells, later
    sweeps, `validate` and `plan` read it instead of every task file."""
    from ablate.data.sources import resolve_task_dir
    from ablate.data.tasks import TaskLibrary

    for source, seed in sorted({(c.settings.data.source, c.settings.data.synthetic_seed) for c in cells}):
        TaskLibrary(resolve_task_dir(source, seed, cache_dir), index_dir=cache_dir / "index", persist_index=True).index


def log_baselines(store, parent_run_id: str, cell: Cell, cache_dir: Path) -> None:
    """Score the heuristic baselines once, on the sweep's test set (that of its first cell), into
    the parent run: an artifact the report reads, and metrics for the MLflow UI."""
    from ablate.baselines import BaselineScores, score_baselines
    from ablate.data.build import eval_pairs
    from ablate.data.clusters import category_to_cluster
    from ablate.data.select import select_tasks
    from ablate.data.sources import resolve_task_dir
    from ablate.data.tasks import TaskLibrary

    settings = cell.settings
    library = TaskLibrary(resolve_task_dir(settings.data.source, settings.data.synthetic_seed, cache_dir),
                          index_dir=cache_dir / "index", persist_index=True)
    selection = select_tasks(library, settings.data, settings.seed)
    pairs = eval_pairs(library, selection.test_tasks, settings.eval.instances_per_task)
    scores = {name: BaselineScores.of(s)
              for name, s in score_baselines(pairs, category_to_cluster(settings.cluster_map)).items()}
    store.log_text(parent_run_id, json.dumps({k: v.model_dump() for k, v in scores.items()}, indent=1),
                   results.BASELINES_ARTIFACT)
    store.log_metrics(parent_run_id, {results.baseline_key(name, metric): value
                                      for name, s in scores.items() for metric, value in s.overall.items()})


def _close_unfinished_runs(store, experiment_id: str, cells: list[Cell], outcomes, interrupted: bool) -> None:
    """Cells whose worker died (given up after retries) leave RUNNING runs: close them as FAILED with the
    error; after Ctrl-C, close the interrupted ones as KILLED."""
    runs = store.cell_runs(experiment_id)
    errors = {o.cell.id: o.error or "failed" for o in outcomes if o.status == "failed"}
    store.close_stale_runs({cid: runs.get(cid, []) for cid in errors}, status="FAILED", errors=errors)
    if interrupted:
        store.close_stale_runs({c.id: runs.get(c.id, []) for c in cells if c.id not in errors}, status="KILLED")


def write_report(prepared: PreparedSweep, out: TextIO) -> bool:
    """The sweep's report (figures in MLflow and ablate_runs/NAME/report); a failure here loses no
    result. Whether the report was written."""
    from ablate.analyse.publish import print_report, publish_report
    from ablate.analyse.report import make_report

    try:
        report = make_report(prepared.tracking_uri, prepared.experiment, "rougeL")
        written = publish_report(report, prepared.tracking_uri, prepared.output_dir / "report")
    except Exception as exc:  # the cells are safe in MLflow; say how to retry the report alone
        print(f"Report not written ({type(exc).__name__}: {exc}); retry with: ablate report {prepared.spec_file}",
              file=out)
        return False
    sys.stdout.flush()
    print_report(report)
    print("Figures: " + ", ".join(str(p) for p in written), file=out)
    return True


def write_json(path: Path, payload) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(path.suffix + ".tmp")
    scratch.write_text(json.dumps(payload, indent=2))
    scratch.replace(path)


def print_summary(prepared: PreparedSweep, counts: dict[str, int], outcomes, seconds: float, out: TextIO) -> None:
    print(f"\nSweep '{prepared.spec.name}' finished in {seconds:.0f}s: {counts['done']} trained, "
          f"{counts['cached']} cached, {counts['failed']} failed, of {counts['total']} cells.", file=out)
    for outcome in outcomes:
        if outcome.status == "done":
            scores = ", ".join(f"{k} {v:.1f}" for k, v in outcome.metrics.items())
            print(f"  done    {outcome.cell.name}: {scores}", file=out)
    for outcome in outcomes:
        if outcome.status == "failed":
            print(f"  FAILED  {outcome.cell.name} ({outcome.cell.id}): {outcome.error}\n"
                  f"          log: {outcome.log_path}", file=out)
    if counts["failed"]:
        print("  Run the same command again to retry the failed cells (finished cells are not re-run).", file=out)
    per_node = Counter(o.node for o in outcomes if o.node)
    if len(per_node) > 1:
        print("Cells per node: " + ", ".join(f"{node}: {n}" for node, n in sorted(per_node.items())), file=out)
    print(f"Results: MLflow experiment '{prepared.experiment}' in {prepared.tracking_uri}; "
          f"plan and Ray logs in {prepared.output_dir}", file=out)
    ui = "ablate ui" if prepared.tracking_uri.endswith(str(Path.cwd() / "mlflow.db")) else \
        f"ablate ui --tracking-uri {prepared.tracking_uri}"
    print(f"Browse: {ui}", file=out)
