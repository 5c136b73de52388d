"""The child run of one cell, written from a Ray worker (the driver never uses this module)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ablate import results
from ablate.errors import error_text
from ablate.status import RUN_FAILED, RUN_FINISHED, RUN_RUNNING
from ablate.track.client import mlflow_client
from ablate.track.retry import RetryPolicy, duplicate_insert
from ablate.track.store import provenance


@dataclass
class CellTracker:
    """The child run of one cell, written from a Ray worker. Every write rides out store outages,
    and no metric step is logged twice, also when a resumed cell reattaches its run."""

    uri: str
    run_id: str
    retry: RetryPolicy = RetryPolicy()
    # metric key -> steps already in the run (None: not read yet); None as a whole: not read yet
    _logged: dict[str, set[int] | None] | None = field(default=None, repr=False)
    store_seconds: float = field(default=0.0, repr=False)  # time spent in store calls so far (ablate.cell_clock)
    closed_as: str | None = field(default=None, repr=False)  # the status this tracker closed its run with

    def __post_init__(self) -> None:
        self._client = mlflow_client(self.uri)

    def _call(self, action):
        """Every store call of the tracker: through the retry policy, and timed."""
        began = time.perf_counter()
        try:
            return self.retry.call(action)
        finally:
            self.store_seconds += time.perf_counter() - began

    @classmethod
    def start(cls, uri: str, experiment_id: str, parent_run_id: str, *, cell_id: str, name: str, sweep: str,
              axis_values: dict[str, Any], settings: dict, data_fingerprint: str,
              retry: RetryPolicy = RetryPolicy(), tags: dict[str, str] | None = None) -> "CellTracker":
        from mlflow.entities import Param

        tags = {results.ROLE: results.ROLE_CELL, results.CELL_ID: cell_id, results.SWEEP: sweep,
                results.PARENT_RUN: parent_run_id, results.DATA_FINGERPRINT: data_fingerprint,
                **provenance(), **results.axis_tags(axis_values), **(tags or {})}
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
            present = self._call(lambda: self._client.get_run(self.run_id)).data.metrics
            self._logged = dict.fromkeys(present)  # their histories are read on demand
        if key not in self._logged:
            return set()
        steps = self._logged[key]
        if steps is None:
            history = self._call(lambda: self._client.get_metric_history(self.run_id, key))
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
            self._call(lambda: self._client.log_batch(self.run_id, metrics=metrics[start:start + 1000]))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call(lambda: self._client.log_text(self.run_id, text, artifact_file))

    def set_tag(self, key: str, value: str) -> None:
        self._call(lambda: self._client.set_tag(self.run_id, key, value))

    def log_dataset(self, name: str, digest: str, source: str, num_rows: int, context: str) -> None:
        """A dataset input of the run (MLflow's Datasets column): name, digest, source and size."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest[:36], source_type="ablate", source=source,
                          profile=json.dumps({"num_rows": num_rows}))
        tags = [InputTag(results.DATASET_CONTEXT, context)]

        def log():
            self._client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags)])

        try:
            self._call(log)
        except Exception as exc:
            if not duplicate_insert(exc):
                raise
            # Cells running at once register the same dataset in the experiment; the one that lost
            # the race finds it there now and only links it to its run.
            self._call(log)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self._call(lambda: self._client.log_artifacts(self.run_id, str(folder), artifact_path))

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
                _log_last_sample(monitor)

        return monitored()

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, v) for k, v in tags.items()]
        self._call(lambda: self._client.log_batch(self.run_id, tags=batch))

    def status(self) -> str:
        return self._call(lambda: self._client.get_run(self.run_id).info.status)

    def reopen(self) -> None:
        """Mark a run RUNNING again when a resumed cell reattaches it (it was closed as KILLED)."""
        self._call(lambda: self._client.update_run(self.run_id, status=RUN_RUNNING))

    def fail(self, exc: BaseException, diverged: bool) -> None:
        """Record the error on the run and close it as FAILED."""
        self.set_tag(results.ERROR, error_text(exc))
        self.set_tag(results.DIVERGED, str(diverged).lower())
        self.finish(RUN_FAILED)

    def finish(self, status: str = RUN_FINISHED) -> None:
        self._call(lambda: self._client.set_terminated(self.run_id, status))
        self.closed_as = status


def _log_last_sample(monitor) -> None:
    """One more sample, taken as the cell ends, logged at the monitor's next step: the monitor
    logs a sample only after each full interval (10 s), so a cell shorter than that (a reused
    worker's smoke cell) would have no `system/` metric at all. Never fails the cell."""
    import logging

    try:
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as exc:  # noqa: BLE001 - a machine measure, not a result
        logging.getLogger(__name__).warning("ablate: the last system-metrics sample was not logged (%s)", exc)
