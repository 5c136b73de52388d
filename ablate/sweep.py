"""The driver of `ablate sweep`: prepared spec -> MLflow parent run -> rounds of cells on Ray Tune
-> summary and report.

A sweep runs in rounds (see `ablate.propose`): its proposer offers a batch of cells, the cells
not already done in MLflow run through Ray Tune, and the round is recorded in the plan; then the
proposer sees the finished cells and offers the next batch, or stops. The grid is one round.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from typing import TextIO

from ablate import results
from ablate.estimate import confirm_cost, longest_first, over_thresholds
from ablate.files import write_json
from ablate.lock import SweepLock
from ablate.prepare import PreparedSweep
from ablate.propose import GridProposer, Proposer
from ablate.status import CellStatus, StatusPrefetch, cell_statuses, cells_to_run
from ablate.summary import print_summary, write_report
from ablate.sweep_setup import (FINISHED_FILE, close_unfinished_runs, finished_last_time, log_timing,
                                prepare_tracking, record_plan)
from ablate.timing import SweepTiming, overlapped
from ablate.track.retry import RetryPolicy

INTERRUPTED_EXIT = 130


def run_sweep(prepared: PreparedSweep, *, address: str | None = None, force: bool = False, yes: bool = False,
              out: TextIO | None = None, prefetch: StatusPrefetch | None = None,
              proposer: Proposer | None = None) -> int:
    """Run every proposed cell not already FINISHED in MLflow; returns 0 when all cells are done,
    1 when some failed, 130 when interrupted. `prefetch`: the cells' statuses, read while the
    sweep was planned; `proposer`: the grid of the spec unless given."""
    from ablate.processes import ProcessRecord
    from ablate.ray_runtime import check_cluster_resources, check_cluster_storage, check_storage, ray_runtime
    from ablate.track.store import Store
    from ablate.track.store_lock import StoreLock
    from ablate.track.uri import check_tracking_uri

    out = out or sys.stdout  # looked up now: a caller may have replaced sys.stdout since import
    proposer = proposer or GridProposer(prepared.cells)
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
    to_run = []
    if not start_early:
        to_run = cells_to_run(prepared.cells, cell_statuses(prepared, prefetch), force)
        confirm_cost(prepared, to_run, yes, out)
    with SweepLock(prepared.output_dir), StoreLock(store, prepared.experiment, prepared.output_dir), \
            ExitStack() as ray_scope:
        record = ProcessRecord(prepared.output_dir / "processes.json")
        reaped = record.reap_leftovers()
        if reaped:
            print(f"Stopped {reaped} process(es) left running by an interrupted sweep.", file=out)

        def start_ray():
            with timing.phase("ray_start"):
                ray_scope.enter_context(ray_runtime(address, None if address else record))
                if address:
                    check_cluster_resources(spec.resources.cpus_per_cell, spec.resources.gpus_per_cell)
                    check_cluster_storage(prepared.tracking_uri, prepared.storage_path,
                                          spec.resources.storage_path is None)

        def set_up():
            with timing.phase("setup"):
                if start_early:  # the estimate, now that the statuses are known (no question to ask)
                    confirm_cost(prepared, cells_to_run(prepared.cells, cell_statuses(prepared, prefetch), force),
                                 yes, out)
                return prepare_tracking(prepared, store, force, out)

        if address:  # connect first: a cluster that refuses us must not leave runs behind
            start_ray()
            tracked = set_up()
        elif start_early or to_run:
            tracked = overlapped(start_ray, set_up)
        else:
            tracked = set_up()
        runner = RoundRunner(prepared, store, tracked, timing, force, out)
        outcomes = runner.run_rounds(proposer)
        if outcomes is None:
            return INTERRUPTED_EXIT
        failed = [o for o in outcomes if o.status == CellStatus.FAILED]
        counts = {"total": len(tracked.plan.cells), "cached": runner.cached, "done": len(outcomes) - len(failed),
                  "failed": len(failed)}
        store.finish_parent_run(tracked.parent_run_id, counts)
        write_json(prepared.output_dir / FINISHED_FILE, sorted(runner.done_ids()))
        print_summary(prepared, counts, outcomes, time.perf_counter() - timing.began, out)
        report_written: list[bool] = []

        def report():
            with timing.phase("report"):
                if outcomes or not store.has_artifact(tracked.parent_run_id, results.report_artifact("report.json")):
                    report_written.append(write_report(prepared, out))
                else:  # nothing ran: the report the last sweep wrote still holds
                    print(f"Nothing ran, so the report is unchanged: {prepared.output_dir / 'report'} and the "
                          f"parent run's report/ (redraw it with: ablate report {prepared.spec_file}).", file=out)

        overlapped(ray_scope.close, report)  # Ray stops (on this thread, where it started) while the report is drawn
        if report_written == [False]:  # a report that failed took no report time worth naming
            timing.phases.pop("report", None)
        timing.stop(outcomes)
        log_timing(store, tracked.parent_run_id, timing, outcomes)
        print(timing.summary(), file=out)
        return 1 if failed else 0


class RoundRunner:
    """Runs a proposer's rounds: records each round in the plan, runs its cells not yet done on
    Ray Tune, and hands the proposer what has finished so far."""

    def __init__(self, prepared: PreparedSweep, store, tracked, timing: SweepTiming, force: bool, out: TextIO) -> None:
        self.prepared, self.store, self.tracked, self.timing, self.force, self.out = (
            prepared, store, tracked, timing, force, out)
        self.statuses = dict(tracked.statuses)
        self.outcomes: list = []
        self.ran: set[str] = set()
        self.cached = 0
        self.reasons: dict[str, str] = {}  # the current round's: each cell's run is tagged with its reason
        self.logged_progress = 0

    def run_rounds(self, proposer: Proposer) -> list | None:
        """Every round's outcomes, or None when interrupted (runs closed, resume command printed)."""
        plan = self.tracked.plan
        index = 0
        if getattr(proposer, "progress", None) is not None:  # a re-run replays the rounds the parent run holds
            self.logged_progress = self._logged_rounds()
        while (proposal := proposer.propose(index, self._finished_cells())) is not None:
            self._log_progress(proposer)
            self.reasons = dict(proposal.reasons)
            plan.add_round(proposer.name, proposal.cells, proposal.reasons)
            record_plan(self.store, self.tracked.parent_run_id, self.prepared.output_dir, plan)
            to_run = cells_to_run(proposal.cells, self.statuses, self.force and index == 0)
            to_run = [c for c in to_run if c.id not in self.ran]
            self.cached += len([c for c in proposal.cells if c.id not in self.ran]) - len(to_run)
            label = f"round {index + 1}: " if index else ""
            print(f"Sweep '{self.prepared.spec.name}': {label}{len(proposal.cells)} cells, "
                  f"{len(proposal.cells) - len(to_run)} cached, {len(to_run)} to run (MLflow experiment "
                  f"'{self.prepared.experiment}', parent run {self.tracked.parent_run_id}).", file=self.out, flush=True)
            if to_run and not self._run(to_run, total=len(plan.cells)):
                return None
            index += 1
        self._log_progress(proposer)
        if getattr(proposer, "stopped", None):  # an adaptive proposer says why it stopped
            print(f"Refinement: {proposer.stopped}.", file=self.out, flush=True)
            self.store.set_tag(self.tracked.parent_run_id, results.REFINE_STOPPED, proposer.stopped)
        return self.outcomes

    def _log_progress(self, proposer: Proposer) -> None:
        """An adaptive proposer's `progress` ((round, refine/... metrics) per refit) into the parent run."""
        for round_index, metrics in getattr(proposer, "progress", [])[self.logged_progress:]:
            self.store.log_metrics(self.tracked.parent_run_id, metrics, step=round_index)
        self.logged_progress = max(self.logged_progress, len(getattr(proposer, "progress", [])))

    def _logged_rounds(self) -> int:
        """Rounds whose refine/... values the parent run already holds (from a killed or finished
        run of the sweep: the replay gives them again, the same, and they are not logged twice)."""
        history = self.store.retry.call(
            lambda: self.store.client.get_metric_history(self.tracked.parent_run_id, results.REFINE_CELLS))
        return len({m.step for m in history})

    def _run(self, cells: list, total: int) -> bool:
        """Run `cells` on Tune (under a folded axis, one trial per training: ablate.fold); False when interrupted."""
        from ablate.fold import FoldGroup, fold_groups
        from ablate.schedule import schedule_cells
        from ablate.spec import folded_axis
        from ablate.trial import TrialContext

        prepared, spec = self.prepared, self.prepared.spec
        groups = fold_groups(cells) if folded_axis(spec) else [FoldGroup(c) for c in cells]
        context = TrialContext(sweep=spec.name, output_dir=str(prepared.output_dir.resolve()),
                               tracking_uri=prepared.tracking_uri, experiment_id=self.tracked.experiment_id,
                               parent_run_id=self.tracked.parent_run_id, retry_seconds=spec.tracking.retry_seconds,
                               storage_path=prepared.storage_path, threads=max(1, int(spec.resources.cpus_per_cell)),
                               use_gpu=spec.resources.gpus_per_cell > 0,
                               reasons={c.id: self.reasons[c.id] for c in cells if c.id in self.reasons}
                               if spec.refine is not None else {})
        outcomes: list = []
        began_ms = int(time.time() * 1000)
        try:
            with self.timing.phase("cells"):
                by_lead = {g.lead.id: g for g in groups}
                scheduled = schedule_cells([by_lead[c.id] for c in longest_first([g.lead for g in groups])], context,
                                           spec.resources, total=total, cached=total - len(cells), out=self.out)
        except KeyboardInterrupt:
            interrupted = True
        else:
            outcomes = scheduled.outcomes + self._fold_point_outcomes(groups, scheduled.outcomes, began_ms)
            self.timing.concurrency = max(self.timing.concurrency, scheduled.most_at_once)
            interrupted = any(o.status == CellStatus.INTERRUPTED for o in outcomes)
        close_unfinished_runs(self.store, self.tracked.experiment_id, cells, outcomes, interrupted)
        if interrupted:
            print(f"\nInterrupted. Finished cells are saved in MLflow; interrupted cells were marked KILLED and "
                  f"resume from their last checkpoint. Resume with: ablate sweep {prepared.spec_file}", file=self.out)
            return False
        self.ran.update(c.id for c in cells)
        self.outcomes += outcomes
        for outcome in outcomes:
            self.statuses[outcome.cell.id] = CellStatus(outcome.status)
        return True

    def _fold_point_outcomes(self, groups: list, outcomes: list, began_ms: int) -> list:
        """The outcome of each cell scored on the way through another's training: done when a run
        of it started since `began_ms` finished (read from MLflow by the one status rule; an older
        run is not this sweep's work under --force), else what became of that training."""
        from ablate.results import is_metric
        from ablate.schedule import CellOutcome
        from ablate.status import counted_run

        folded = [g for g in groups if g.points]
        if not folded:
            return []
        runs = self.store.cell_runs(self.tracked.experiment_id)
        by_lead = {o.cell.id: o for o in outcomes}
        found = []
        for group in folded:
            lead = by_lead[group.lead.id]
            for point in group.points:
                status, run = counted_run([r for r in runs.get(point.id, []) if r.info.start_time >= began_ms])
                if status == CellStatus.DONE:
                    found.append(CellOutcome(point, CellStatus.DONE, {k: v for k, v in run.data.metrics.items()
                                                                      if is_metric(k)}, node=lead.node,
                                             run_id=run.info.run_id))
                else:
                    status = lead.status if lead.status != CellStatus.DONE else CellStatus.FAILED
                    found.append(CellOutcome(point, status, error=lead.error or f"not scored by {group.lead.name}'s "
                                             "training", log_path=lead.log_path, node=lead.node))
        return found

    def _finished_cells(self) -> dict[str, dict[str, float]]:
        """Every finished cell of the experiment with its metrics (cached ones included), read from
        MLflow by the one status rule: what a proposer decides on, the same after a restart."""
        from ablate.status import counted_run

        finished = {}
        for cell_id, runs in self.store.cell_runs(self.tracked.experiment_id).items():
            status, run = counted_run(runs)
            if status == CellStatus.DONE:
                finished[cell_id] = dict(run.data.metrics)
        return finished

    def done_ids(self) -> set[str]:
        return {c.id for c in self.tracked.plan.cells if self.statuses.get(c.id) == CellStatus.DONE}
