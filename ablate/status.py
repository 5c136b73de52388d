"""A cell's status, and the one rule that gives it from the cell's MLflow runs.

A cell may have several child runs (a failed attempt, then a finished re-run; a run closed
KILLED by an interrupted sweep). The run that counts is the newest FINISHED one; without one,
the newest FAILED one; without either, the cell is still to run. `ablate sweep`, `plan`,
`report` and `compare` all read a cell's status and its result through `counted_run`.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Any, Sequence


class CellStatus(str, enum.Enum):
    DONE = "done"  # a FINISHED run: its metrics are the cell's result; a sweep skips it
    FAILED = "failed"  # no FINISHED run, a FAILED one: re-running the sweep retries it
    TO_RUN = "to run"  # no FINISHED or FAILED run (never started, or interrupted)
    INTERRUPTED = "interrupted"  # a trial stopped by Ctrl-C before it finished (an outcome only)

    def __str__(self) -> str:
        return self.value


# MLflow run statuses
RUN_FINISHED, RUN_FAILED, RUN_KILLED, RUN_RUNNING, RUN_SCHEDULED = "FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED"
OPEN_RUN_STATUSES = (RUN_RUNNING, RUN_SCHEDULED)


def counted_run(runs: Sequence[Any]) -> tuple[CellStatus, Any | None]:
    """The cell's status and the run that counts, from its runs oldest first (MLflow `Run`s)."""
    newest_first = list(reversed(runs))
    for wanted, status in ((RUN_FINISHED, CellStatus.DONE), (RUN_FAILED, CellStatus.FAILED)):
        for run in newest_first:
            if run.info.status == wanted:
                return status, run
    return CellStatus.TO_RUN, None


def cell_status(runs: Sequence[Any]) -> CellStatus:
    return counted_run(runs)[0]


def cells_to_run(cells, statuses: dict[str, CellStatus], force: bool = False) -> list:
    """The cells a sweep trains: every one not done in MLflow (all of them with --force)."""
    return [c for c in cells if force or statuses.get(c.id, CellStatus.TO_RUN) != CellStatus.DONE]


# -- reading the statuses of a sweep's cells ------------------------------------------------
def read_cell_statuses(tracking_uri: str, experiment: str, retry_seconds: float) -> dict[str, CellStatus]:
    """Status (done / failed / to run) of every cell with a run in the experiment; reads, never
    creates, the store."""
    from ablate.track.retry import RetryPolicy
    from ablate.track.store import Store
    from ablate.track.uri import check_tracking_uri

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

    def result(self, timeout: float = 60.0) -> dict[str, CellStatus] | None:
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
    from ablate.errors import AblateError
    from ablate.spec import load_spec
    from ablate.track.uri import resolve_tracking_uri

    if not sys.platform.startswith("linux"):
        return None
    workdir = workdir or Path.cwd()
    try:
        spec = load_spec(spec_file, overrides, workdir)
    except AblateError:
        return None
    uri = resolve_tracking_uri(tracking_uri or spec.tracking.tracking_uri, workdir)
    return StatusPrefetch(uri, spec.tracking.experiment or spec.name, spec.tracking.retry_seconds)


def cell_statuses(prepared, prefetch: StatusPrefetch | None = None) -> dict[str, CellStatus]:
    """Status per cell id from the MLflow store (done / failed / to run)."""
    statuses = prefetch.result() if prefetch is not None else None
    if statuses is None:
        statuses = read_cell_statuses(prepared.tracking_uri, prepared.experiment, prepared.spec.tracking.retry_seconds)
    return {c.id: statuses.get(c.id, CellStatus.TO_RUN) for c in prepared.cells}

