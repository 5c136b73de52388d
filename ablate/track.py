"""MLflow: one experiment per sweep, a parent run per sweep, a child run per cell.

Everything goes through `MlflowClient` with explicit run ids (no global active run), so the
driver and Ray workers can write to the same store at once. Every call, read or write, goes
through one `RetryPolicy`. Key, tag and artifact names come from `ablate.results`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urlparse

from ablate import __version__, results
from ablate.errors import AblateError
from ablate.files import cannot_write_in

T = TypeVar("T")


def resolve_tracking_uri(uri: str | None, workdir: Path) -> str:
    """Default `sqlite:///mlflow.db` in the working directory; relative SQLite paths made absolute
    so Ray workers (which run elsewhere) write to the same file."""
    uri = uri or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((workdir / uri[len("sqlite:///"):]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_tracking_uri(uri: str, timeout: float = 3.0) -> None:
    """Fail fast (before anything starts) when the store cannot be reached."""
    path = sqlite_path(uri)
    if path is not None:
        if path.is_dir():
            raise AblateError(f"the SQLite store '{path}' is a folder, not a database file.",
                              field="tracking.tracking_uri", fix="name a file, e.g. sqlite:///mlflow.db.")
        if not path.parent.is_dir() or cannot_write_in(path.parent):  # tried: /proc passes os.access as root
            raise AblateError(f"the folder of the SQLite store '{path}' does not exist or is not writable.",
                              field="tracking.tracking_uri", fix="point --tracking-uri at a writable place.")
        if path.is_file() and path.stat().st_size and path.read_bytes()[:16] != b"SQLite format 3\x00":
            raise AblateError(f"'{path}' exists but is not an SQLite database.", field="tracking.tracking_uri",
                              fix="move the file away, or point --tracking-uri at another file.")
        if path.is_file():
            _check_sqlite_schema(path)
        return
    if uri.startswith(("postgresql", "mysql", "mssql")):
        from ablate.netcheck import check_database_reachable

        check_database_reachable(uri, timeout)  # seconds, not MLflow's silent minutes of retries
        _check_driver(uri)
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        import urllib.request

        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).read()
        except OSError as exc:
            raise AblateError(f"the MLflow tracking server at {uri} is unreachable ({exc}).",
                              field="tracking.tracking_uri",
                              fix="start it (mlflow server --host 127.0.0.1 --port 5000) or fix --tracking-uri.") from None
        return
    if parsed.scheme.partition("+")[0] not in ("postgresql", "mysql", "mssql", "databricks", "file", ""):
        raise AblateError(f"unsupported tracking URI '{uri}'.", field="tracking.tracking_uri",
                          fix="use sqlite:///mlflow.db, http://host:port or a database URI.")


def _check_sqlite_schema(path: Path) -> None:
    """A store left half-migrated (by MLflow stopped while it created or upgraded the file, before
    ablate made creation atomic) fails every later open; say so instead of retrying."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
            runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if leftovers and "runs" in tables else 0
    except sqlite3.Error:
        return  # locked or otherwise unreadable now: MLflow's own open reports it
    if leftovers:
        raise AblateError(
            f"the SQLite store '{path}' was left half-built by a process stopped while MLflow created or upgraded "
            f"it (table {leftovers[0]} is left over), and it holds {runs} run(s).", field="tracking.tracking_uri",
            fix="it holds no runs: delete it and run again." if not runs else
            "restore the file from a backup (on SQLite an interrupted migration is not rolled back), "
            "or point --tracking-uri at a new file.")


DRIVERS = {"postgresql": ("psycopg", "psycopg2"), "mysql": ("pymysql", "MySQLdb"), "mssql": ("pyodbc", "pymssql")}


def _check_driver(uri: str) -> None:
    """A database store needs its Python driver; say which extra brings it."""
    import importlib.util

    scheme = urlparse(uri).scheme
    dialect, _, driver = scheme.partition("+")
    wanted = (driver,) if driver else DRIVERS.get(dialect, ())
    if wanted and not any(importlib.util.find_spec(name) for name in wanted):
        raise AblateError(f"the tracking store '{scheme}://...' needs the Python driver {' or '.join(wanted)}, "
                          "which is not installed.", field="tracking.tracking_uri",
                          fix='install the cluster extra: pip install -e ".[cluster]" (PostgreSQL via psycopg).')


def store_exists(uri: str) -> bool:
    path = sqlite_path(uri)
    return path is None or path.is_file()


def mlflow_client(uri: str):
    """The one way ablate opens a store. A SQLite store that does not exist yet is made whole first
    (`create_sqlite_store`), so every process sees either no file or a fully migrated one."""
    from mlflow.tracking import MlflowClient

    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        create_sqlite_store(path)
    return MlflowClient(tracking_uri=uri)


def create_sqlite_store(path: Path) -> None:
    """Create an MLflow SQLite store at `path`, atomically. MLflow builds a new database in dozens
    of migration steps that SQLite does not run as one transaction: a process killed among them
    leaves a file that no later open can migrate, and two processes creating one file at once
    break each other. So the schema is built in a private file beside `path` and hard-linked into
    place whole; when another process got there first, its store is kept and ours is dropped."""
    import psutil
    from mlflow.tracking import MlflowClient

    host = re.sub(r"[^A-Za-z0-9-]", "_", os.uname().nodename)
    prefix = f".{path.name}.{host}."
    for stale in path.parent.glob(f"{prefix}*.new"):  # left by a creator killed on this machine
        pid = stale.name[len(prefix):-len(".new")]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            stale.unlink(missing_ok=True)
    building = path.with_name(f"{prefix}{os.getpid()}.new")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments(max_results=1)  # migrates
        try:
            os.link(building, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: rename, unless a store appeared
            if not path.exists():
                os.replace(building, path)
    finally:
        building.unlink(missing_ok=True)


@dataclass(frozen=True)
class RetryPolicy:
    """How long every MLflow call (reads and writes, driver and cells) waits out a store that is
    briefly unavailable: a SQLite file locked by a concurrent cell, or a tracking server that is
    down or restarting. Errors that are not transient are raised at once."""

    window_seconds: float = 300.0
    first_delay: float = 0.2
    max_delay: float = 10.0

    def call(self, action: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.window_seconds
        delay = self.first_delay
        while True:
            try:
                return action()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise store_unavailable(exc, self.window_seconds) from exc
                time.sleep(delay)
                delay = min(delay * 2, self.max_delay)


class StoreUnavailable(AblateError):
    """The store stayed unavailable for the whole retry window: a message and its fix, no traceback."""


def store_unavailable(exc: BaseException, window_seconds: float) -> StoreUnavailable:
    last = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return StoreUnavailable(f"the tracking store did not answer for the whole retry window ({window_seconds:g} s); "
                            f"the last error: {type(exc).__name__}: {last}", field="tracking.retry_seconds",
                            fix="bring the store back (the MLflow server, the database or the disk), then run the "
                                "same command again: finished cells are kept. tracking.retry_seconds sets the window.")


def is_transient(exc: BaseException) -> bool:
    """Whether a store error may pass by itself: classified by type where MLflow keeps one."""
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE, ErrorCode

    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, sqlalchemy.exc.OperationalError):
            # SQLite raises OperationalError for a locked file and for a broken schema alike; its
            # error name tells them apart (SQLITE_BUSY, SQLITE_LOCKED... pass; SQLITE_ERROR stays)
            return getattr(error.orig, "sqlite_errorname", "") != "SQLITE_ERROR"
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                              ConnectionError, TimeoutError)):
            return True
        if isinstance(error, MlflowException):
            if error.error_code == ErrorCode.Name(TEMPORARILY_UNAVAILABLE):
                return True
            # MLflow's REST client re-raises a lost connection (after its own retries) and a 5xx
            # from a proxy as a bare MlflowException without its cause: only the text tells.
            message = str(error)
            if "failed with exception" in message or re.search(r"error code 50[234]\b", message):
                return True
    return False


def _duplicate_insert(exc: BaseException) -> bool:
    """A unique-constraint race in the store (two writers inserting the same row)."""
    import sqlalchemy.exc

    return isinstance(exc.__cause__, sqlalchemy.exc.IntegrityError) or "UNIQUE constraint" in str(exc) \
        or "duplicate key value" in str(exc)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except OSError:
        return None


def _provenance() -> dict[str, str]:
    return {results.VERSION: __version__, results.GIT_COMMIT: git_commit() or ""}


class Store:
    """The driver's view of a tracking store: experiments, the parent run, cell runs by cell id."""

    def __init__(self, uri: str, retry: RetryPolicy = RetryPolicy()) -> None:
        self.uri, self.retry = uri, retry

    @functools.cached_property
    def client(self):
        """Made on first use: a client creates a SQLite store's file, and reading must not."""
        return mlflow_client(self.uri)

    def ensure_experiment(self, name: str, description: str | None = None) -> str:
        """The experiment (created, or restored if deleted); it opens on MLflow's training-runs view,
        with `description` as its note."""
        experiment = self.retry.call(lambda: self.client.get_experiment_by_name(name))
        if experiment is None:
            experiment_id = self.retry.call(lambda: self.client.create_experiment(name))
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                self.retry.call(lambda: self.client.restore_experiment(experiment_id))
        tags = {results.EXPERIMENT_KIND: results.TRAINING_KIND, **({results.NOTE: description} if description else {})}
        for key, value in tags.items():
            self.retry.call(lambda: self.client.set_experiment_tag(experiment_id, key, value))
        return experiment_id

    def find_experiment(self, name: str) -> str | None:
        if not store_exists(self.uri):
            return None
        experiment = self.retry.call(lambda: self.client.get_experiment_by_name(name))
        return None if experiment is None else experiment.experiment_id

    def sweep_experiments(self) -> list[tuple[str, str]]:
        """(name, id) of every experiment holding an ablate sweep (a parent run)."""
        found = []
        for experiment in self.retry.call(self.client.search_experiments):
            if self.parent_run(experiment.experiment_id) is not None:
                found.append((experiment.name, experiment.experiment_id))
        return found

    def experiment_names(self) -> list[str]:
        return sorted(e.name for e in self.retry.call(self.client.search_experiments))

    def _search(self, experiment_id: str, role: str, order: str = "ASC") -> list[Any]:
        """Every run of a role in the experiment (all pages)."""
        found: list[Any] = []
        token = None
        while True:
            page = self.retry.call(lambda: self.client.search_runs(
                [experiment_id], filter_string=f"tags.`{results.ROLE}` = '{role}'", max_results=1000,
                page_token=token, order_by=[f"attributes.start_time {order}"]))
            found.extend(page)
            token = page.token
            if not token:
                return found

    def parent_run(self, experiment_id: str, sweep: str | None = None):
        """The sweep's parent run (the first one made), or None."""
        parents = [r for r in self._search(experiment_id, results.ROLE_PARENT)
                   if sweep is None or r.data.tags.get(results.SWEEP) == sweep]
        return parents[0] if parents else None

    def start_parent_run(self, experiment_id: str, sweep: str, artifacts: dict[str, str]) -> str:
        """Reattach the sweep's parent run (or create it), mark it RUNNING and log `artifacts`."""
        found = self.parent_run(experiment_id, sweep)
        if found is not None:
            run_id = found.info.run_id
            self.retry.call(lambda: self.client.update_run(run_id, status="RUNNING"))
        else:
            tags = {results.ROLE: results.ROLE_PARENT, results.SWEEP: sweep, **_provenance()}
            run_id = self.retry.call(lambda: self.client.create_run(experiment_id, run_name=sweep, tags=tags)).info.run_id
        for name, text in artifacts.items():
            self.log_text(run_id, text, name)
        return run_id

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.retry.call(lambda: self.client.log_text(run_id, text, artifact_file))

    def has_artifact(self, run_id: str, artifact_file: str) -> bool:
        folder = artifact_file.rsplit("/", 1)[0] if "/" in artifact_file else None
        listed = self.retry.call(lambda: self.client.list_artifacts(run_id, folder))
        return any(entry.path == artifact_file for entry in listed)

    def read_text(self, run_id: str, artifact_file: str) -> str | None:
        """An artifact's text, or None when the run has no such artifact."""
        from mlflow.exceptions import MlflowException

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with tempfile.TemporaryDirectory(prefix="ablate-read-") as scratch:
            try:
                path = self.retry.call(lambda: self.client.download_artifacts(run_id, artifact_file, scratch))
            except (MlflowException, OSError) as exc:
                if is_transient(exc):
                    raise
                return None
            return Path(path).read_text(encoding="utf-8")

    def log_metrics(self, run_id: str, values: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):
            self.retry.call(lambda: self.client.log_batch(run_id, metrics=metrics[start:start + 1000]))

    def log_points(self, run_id: str, points: dict[str, list[tuple[int, float]]]) -> None:
        """Metric series (key -> [(step, value)]) in one batch per 1000 points."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, series in points.items() for step, v in series]
        for start in range(0, len(metrics), 1000):
            self.retry.call(lambda: self.client.log_batch(run_id, metrics=metrics[start:start + 1000]))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.retry.call(lambda: self.client.set_tag(run_id, key, value))

    def finish_parent_run(self, run_id: str, counts: dict[str, int]) -> None:
        self.log_metrics(run_id, {f"cells_{k}": v for k, v in counts.items()})
        self.retry.call(lambda: self.client.set_terminated(run_id, "FINISHED"))

    def cell_runs(self, experiment_id: str | None) -> dict[str, list[Any]]:
        """Child runs of the experiment by cell id (all statuses), oldest first."""
        if experiment_id is None:
            return {}
        runs: dict[str, list[Any]] = {}
        for run in self._search(experiment_id, results.ROLE_CELL):
            runs.setdefault(run.data.tags.get(results.CELL_ID, ""), []).append(run)
        return runs

    def close_stale_runs(self, runs_by_cell: dict[str, list[Any]], status: str = "KILLED",
                         errors: dict[str, str] | None = None) -> int:
        """Close runs left RUNNING (by a crash, a lost worker or Ctrl-C) so they never count as results;
        `errors` (by cell id) are recorded on the runs closed as FAILED."""
        closed = 0
        for cell_id, runs in runs_by_cell.items():
            for run in runs:
                if run.info.status in ("RUNNING", "SCHEDULED"):
                    run_id = run.info.run_id
                    if errors and cell_id in errors:
                        error = errors[cell_id][:results.MAX_ERROR_LENGTH]
                        self.retry.call(lambda: self.client.set_tag(run_id, results.ERROR, error))
                    self.retry.call(lambda: self.client.set_terminated(run_id, status))
                    closed += 1
        return closed


def cell_status(runs: list[Any]) -> str:
    """One cell's status from its runs: done (a FINISHED run), failed (a FAILED one) or to run."""
    statuses = {r.info.status for r in runs}
    if "FINISHED" in statuses:
        return "done"
    if "FAILED" in statuses:
        return "failed"
    return "to run"


@dataclass
class CellTracker:
    """The child run of one cell, written from a Ray worker. Every write rides out store outages,
    and no metric step is logged twice, also when a resumed cell reattaches its run."""

    uri: str
    run_id: str
    retry: RetryPolicy = RetryPolicy()
    # metric key -> steps already in the run (None: not read yet); None as a whole: not read yet
    _logged: dict[str, set[int] | None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._client = mlflow_client(self.uri)

    @classmethod
    def start(cls, uri: str, experiment_id: str, parent_run_id: str, *, cell_id: str, name: str, sweep: str,
              axis_values: dict[str, Any], settings: dict, data_fingerprint: str,
              retry: RetryPolicy = RetryPolicy()) -> "CellTracker":
        from mlflow.entities import Param

        tags = {results.ROLE: results.ROLE_CELL, results.CELL_ID: cell_id, results.SWEEP: sweep,
                results.PARENT_RUN: parent_run_id, results.DATA_FINGERPRINT: data_fingerprint,
                **_provenance(), **results.axis_tags(axis_values)}
        client = mlflow_client(uri)
        run = retry.call(lambda: client.create_run(experiment_id, run_name=name, tags=tags))
        tracker = cls(uri, run.info.run_id, retry, _logged={})  # a new run has logged nothing
        from ablate.plan import format_value

        axis_params = {results.axis_param_key(k): format_value(v) for k, v in axis_values.items()}
        params = [Param(k, v[:6000]) for k, v in {**results.settings_params(settings), **axis_params}.items()]
        for start in range(0, len(params), 100):
            retry.call(lambda: client.log_batch(tracker.run_id, params=params[start:start + 100]))
        tracker.log_metrics(results.axis_metrics(axis_values))
        tracker.log_text(json.dumps(settings, indent=2), results.CELL_ARTIFACT)
        return tracker

    def _already_logged(self, key: str) -> set[int]:
        """Steps of `key` already in the run (read once per key, only for a reattached run)."""
        if self._logged is None:
            present = self.retry.call(lambda: self._client.get_run(self.run_id)).data.metrics
            self._logged = dict.fromkeys(present)  # their histories are read on demand
        if key not in self._logged:
            return set()
        steps = self._logged[key]
        if steps is None:
            history = self.retry.call(lambda: self._client.get_metric_history(self.run_id, key))
            steps = self._logged[key] = {m.step for m in history}
        return steps

    def log_metrics(self, values: dict[str, float], step: int = 0) -> None:
        self.log_series({k: [(step, v)] for k, v in values.items()})

    def log_series(self, series: dict[str, Iterable[tuple[int, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for key, points in series.items():
            done = self._already_logged(key)
            fresh = [(step, value) for step, value in points if step not in done]
            metrics += [Metric(key, float(value), now, step) for step, value in fresh]
            self._logged[key] = done | {step for step, _ in fresh}
        for start in range(0, len(metrics), 1000):
            self.retry.call(lambda: self._client.log_batch(self.run_id, metrics=metrics[start:start + 1000]))

    def log_text(self, text: str, artifact_file: str) -> None:
        self.retry.call(lambda: self._client.log_text(self.run_id, text, artifact_file))

    def set_tag(self, key: str, value: str) -> None:
        self.retry.call(lambda: self._client.set_tag(self.run_id, key, value))

    def log_dataset(self, name: str, digest: str, source: str, num_rows: int, context: str) -> None:
        """A dataset input of the run (MLflow's Datasets column): name, digest, source and size."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest[:36], source_type="ablate", source=source,
                          profile=json.dumps({"num_rows": num_rows}))
        tags = [InputTag(results.DATASET_CONTEXT, context)]

        def log():
            self._client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags)])

        try:
            self.retry.call(log)
        except Exception as exc:
            if not _duplicate_insert(exc):
                raise
            # Cells running at once register the same dataset in the experiment; the one that lost
            # the race finds it there now and only links it to its run.
            self.retry.call(log)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self.retry.call(lambda: self._client.log_artifacts(self.run_id, str(folder), artifact_path))

    def system_metrics(self):
        """MLflow's system-metrics monitor for this run (CPU, memory, disk, network; GPU with pynvml):
        a context manager, sampling every 10 s while the cell runs."""
        from contextlib import contextmanager

        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        @contextmanager
        def monitored():
            monitor = SystemMetricsMonitor(self.run_id, sampling_interval=10, resume_logging=True,
                                           tracking_uri=self.uri)
            monitor.start()
            try:
                yield
            finally:
                monitor.finish()

        return monitored()

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, v) for k, v in tags.items()]
        self.retry.call(lambda: self._client.log_batch(self.run_id, tags=batch))

    def status(self) -> str:
        return self.retry.call(lambda: self._client.get_run(self.run_id).info.status)

    def reopen(self) -> None:
        """Mark a run RUNNING again when a resumed cell reattaches it (it was closed as KILLED)."""
        self.retry.call(lambda: self._client.update_run(self.run_id, status="RUNNING"))

    def fail(self, exc: BaseException, diverged: bool) -> None:
        """Record the error on the run and close it as FAILED."""
        self.set_tag(results.ERROR, f"{type(exc).__name__}: {exc}"[:results.MAX_ERROR_LENGTH])
        self.set_tag(results.DIVERGED, str(diverged).lower())
        self.finish("FAILED")

    def finish(self, status: str = "FINISHED") -> None:
        self.retry.call(lambda: self._client.set_terminated(self.run_id, status))
