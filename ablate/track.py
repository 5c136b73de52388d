"""MLflow: one experiment per sweep, a parent run per sweep, a child run per cell.

Everything goes through `MlflowClient` with explicit run ids (no global active run), so the
driver and Ray workers can write to the same store at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urlparse

from ablate import __version__
from ablate.errors import AblateError

T = TypeVar("T")
ROLE, CELL_ID, SWEEP = "ablate.role", "ablate.cell_id", "ablate.sweep"
PARENT_TAG = "mlflow.parentRunId"


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
        if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
            raise AblateError(f"the folder of the SQLite store '{path}' does not exist or is not writable.",
                              field="tracking.tracking_uri", fix="point --tracking-uri at a writable place.")
        return
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
    if parsed.scheme not in ("postgresql", "mysql", "mssql", "databricks", "file", ""):
        raise AblateError(f"unsupported tracking URI '{uri}'.", field="tracking.tracking_uri",
                          fix="use sqlite:///mlflow.db, http://host:port or a database URI.")


def store_exists(uri: str) -> bool:
    path = sqlite_path(uri)
    return path is None or path.is_file()


TRANSIENT = ("locked", "connection refused", "max retries exceeded", "connection aborted",
             "connection reset", "temporarily unavailable", "503", "502", "timed out")


def with_retry(action: Callable[[], T], retry_seconds: float = 300.0) -> T:
    """Retry a store call through transient failures: a SQLite lock held by a concurrent cell, or a
    tracking server that is down for a while (up to `retry_seconds`, then the error is raised)."""
    deadline = time.monotonic() + retry_seconds
    delay = 0.2
    while True:
        try:
            return action()
        except Exception as exc:  # mlflow wraps sqlalchemy and HTTP errors in MlflowException
            message = str(exc).lower()
            if not any(t in message for t in TRANSIENT) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str) -> str:
    mlflow_client = client(uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return with_retry(lambda: mlflow_client.create_experiment(name))


def find_experiment(uri: str, name: str) -> str | None:
    if not store_exists(uri):
        return None
    experiment = client(uri).get_experiment_by_name(name)
    return None if experiment is None else experiment.experiment_id


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except OSError:
        return None


def start_parent_run(uri: str, experiment_id: str, sweep: str, artifacts: dict[str, str]) -> str:
    """Reattach the sweep's parent run (or create it), mark it RUNNING and log the spec and plan."""
    mlflow_client = client(uri)
    found = mlflow_client.search_runs([experiment_id], filter_string=f"tags.`{ROLE}` = 'parent' and "
                                      f"tags.`{SWEEP}` = '{sweep}'", max_results=1,
                                      order_by=["attributes.start_time ASC"])
    if found:
        run_id = found[0].info.run_id
        with_retry(lambda: mlflow_client.update_run(run_id, status="RUNNING"))
    else:
        run = with_retry(lambda: mlflow_client.create_run(
            experiment_id, run_name=sweep,
            tags={ROLE: "parent", SWEEP: sweep, "ablate.version": __version__, "ablate.git_commit": git_commit() or ""}))
        run_id = run.info.run_id
    for name, text in artifacts.items():
        with_retry(lambda: mlflow_client.log_text(run_id, text, name))
    return run_id


def finish_parent_run(uri: str, run_id: str, counts: dict[str, int]) -> None:
    from mlflow.entities import Metric

    mlflow_client = client(uri)
    now = int(time.time() * 1000)
    with_retry(lambda: mlflow_client.log_batch(run_id, metrics=[Metric(f"cells_{k}", v, now, 0) for k, v in counts.items()]))
    with_retry(lambda: mlflow_client.set_terminated(run_id, "FINISHED"))


def cell_runs(uri: str, experiment_id: str | None) -> dict[str, list[Any]]:
    """Child runs of the experiment by cell id (all statuses), oldest first."""
    if experiment_id is None:
        return {}
    runs: dict[str, list[Any]] = {}
    token = None
    while True:
        page = client(uri).search_runs([experiment_id], filter_string=f"tags.`{ROLE}` = 'cell'",
                                       max_results=1000, page_token=token,
                                       order_by=["attributes.start_time ASC"])
        for run in page:
            runs.setdefault(run.data.tags.get(CELL_ID, ""), []).append(run)
        token = page.token
        if not token:
            return runs


def cell_status(runs: list[Any]) -> str:
    statuses = {r.info.status for r in runs}
    if "FINISHED" in statuses:
        return "done"
    if "FAILED" in statuses:
        return "failed"
    return "to run"


def close_stale_runs(uri: str, runs_by_cell: dict[str, list[Any]], status: str = "KILLED",
                     errors: dict[str, str] | None = None) -> int:
    """Close runs left RUNNING (by a crash, a lost worker or Ctrl-C) so they never count as results;
    `errors` (by cell id) are recorded on the runs closed as FAILED."""
    mlflow_client = client(uri)
    closed = 0
    for cell_id, runs in runs_by_cell.items():
        for run in runs:
            if run.info.status in ("RUNNING", "SCHEDULED"):
                if errors and cell_id in errors:
                    with_retry(lambda: mlflow_client.set_tag(run.info.run_id, "ablate.error", errors[cell_id][:5000]))
                with_retry(lambda: mlflow_client.set_terminated(run.info.run_id, status))
                closed += 1
    return closed


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(tree) if isinstance(tree, list) else str(tree)}


def metric_key(*parts: str) -> str:
    """MLflow metric keys allow no '+': encodings are written with '-' (def+pos2 -> def-pos2)."""
    return "/".join(p.replace("+", "-") for p in parts)


class CellRun:
    """The child run of one cell, written from a Ray worker; every write rides out store outages."""

    def __init__(self, uri: str, run_id: str, retry_seconds: float = 300.0) -> None:
        self.uri, self.run_id, self.retry_seconds = uri, run_id, retry_seconds
        self._client = client(uri)

    def _retry(self, action: Callable[[], T]) -> T:
        return with_retry(action, self.retry_seconds)

    @classmethod
    def start(cls, uri: str, experiment_id: str, parent_run_id: str, *, cell_id: str, name: str, sweep: str,
              axis_values: dict[str, Any], settings: dict, data_fingerprint: str,
              retry_seconds: float = 300.0) -> "CellRun":
        from mlflow.entities import Param

        tags = {ROLE: "cell", CELL_ID: cell_id, SWEEP: sweep, PARENT_TAG: parent_run_id,
                "ablate.version": __version__, "ablate.git_commit": git_commit() or "",
                "ablate.data_fingerprint": data_fingerprint,
                **{f"ablate.axis.{k}": json.dumps(v) for k, v in axis_values.items()}}
        mlflow_client = client(uri)
        run = with_retry(lambda: mlflow_client.create_run(experiment_id, run_name=name, tags=tags), retry_seconds)
        cell_run = cls(uri, run.info.run_id, retry_seconds)
        params = [Param(k, v[:6000]) for k, v in flatten(settings).items()]
        for start in range(0, len(params), 100):
            cell_run._retry(lambda: mlflow_client.log_batch(cell_run.run_id, params=params[start:start + 100]))
        cell_run.log_text(json.dumps(settings, indent=2), "cell.json")
        return cell_run

    def log_metrics(self, values: dict[str, float], step: int = 0) -> None:
        self.log_series({k: [(step, v)] for k, v in values.items()})

    def log_series(self, series: dict[str, Iterable[tuple[int, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, points in series.items() for step, value in points]
        for start in range(0, len(metrics), 1000):
            self._retry(lambda: self._client.log_batch(self.run_id, metrics=metrics[start:start + 1000]))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._retry(lambda: self._client.log_text(self.run_id, text, artifact_file))

    def set_tag(self, key: str, value: str) -> None:
        self._retry(lambda: self._client.set_tag(self.run_id, key, value))

    def status(self) -> str:
        return self._retry(lambda: self._client.get_run(self.run_id).info.status)

    def reopen(self) -> None:
        """Mark a run RUNNING again when a resumed cell reattaches it (it was closed as KILLED)."""
        self._retry(lambda: self._client.update_run(self.run_id, status="RUNNING"))

    def finish(self, status: str = "FINISHED") -> None:
        self._retry(lambda: self._client.set_terminated(self.run_id, status))


def eval_metrics(encoding: str, result: dict) -> dict[str, float]:
    """Flat MLflow metrics of one test encoding: overall, per category, per task, per cluster."""
    metrics = {metric_key(encoding, m): result[m] for m in ("exact_match", "rouge1", "rougeL")}
    for group in ("per_category", "per_task", "per_cluster"):
        for name, values in result.get(group, {}).items():
            for m, v in values.items():
                metrics[metric_key(encoding, group.removeprefix("per_"), name, m)] = v
    for category, value in result.get("per_category_headline", {}).items():
        metrics[metric_key(encoding, "category", category, "headline")] = value
    return metrics
