"""The driver's view of a tracking store: experiments, the parent run, cell runs by cell id."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ablate import __version__, results
from ablate.errors import MAX_ERROR_LENGTH
from ablate.status import OPEN_RUN_STATUSES, RUN_FINISHED, RUN_KILLED, RUN_RUNNING
from ablate.track.client import mlflow_client
from ablate.track.retry import RetryPolicy, is_transient
from ablate.track.uri import store_exists


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except OSError:
        return None


def provenance() -> dict[str, str]:
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
            self.retry.call(lambda: self.client.update_run(run_id, status=RUN_RUNNING))
        else:
            tags = {results.ROLE: results.ROLE_PARENT, results.SWEEP: sweep, **provenance()}
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
        self.retry.call(lambda: self.client.set_terminated(run_id, RUN_FINISHED))

    def cell_runs(self, experiment_id: str | None) -> dict[str, list[Any]]:
        """Child runs of the experiment by cell id (all statuses), oldest first."""
        if experiment_id is None:
            return {}
        runs: dict[str, list[Any]] = {}
        for run in self._search(experiment_id, results.ROLE_CELL):
            runs.setdefault(run.data.tags.get(results.CELL_ID, ""), []).append(run)
        return runs

    def close_stale_runs(self, runs_by_cell: dict[str, list[Any]], status: str = RUN_KILLED,
                         errors: dict[str, str] | None = None) -> int:
        """Close runs left RUNNING (by a crash, a lost worker or Ctrl-C) so they never count as results;
        `errors` (by cell id) are recorded on the runs closed as FAILED."""
        closed = 0
        for cell_id, runs in runs_by_cell.items():
            for run in runs:
                if run.info.status in OPEN_RUN_STATUSES:
                    run_id = run.info.run_id
                    if errors and cell_id in errors:
                        error = errors[cell_id][:MAX_ERROR_LENGTH]
                        self.retry.call(lambda: self.client.set_tag(run_id, results.ERROR, error))
                    self.retry.call(lambda: self.client.set_terminated(run_id, status))
                    closed += 1
        return closed

