"""One `ablate sweep` per experiment per store, whichever folder or machine it starts from.

The store arbitrates: the lock is an MLflow experiment named after the sweep's experiment
(`<experiment> (ablate sweep running)`), and MLflow creates an experiment name once (a unique
name in every store: SQLite, PostgreSQL, a tracking server), so of two sweeps started at once
exactly one creates it. Its tags say who holds it (host, process, folder, start) and when it last
beat; the holder beats every HEARTBEAT_SECONDS. A lock whose holder is gone does not block for
long: one left by a process of this machine that no longer runs is taken over at once, and any
other once it has not beaten for STALE_SECONDS. Released, the lock experiment is renamed (the
name is free again) and deleted (hidden in the UI).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ablate.errors import AblateError

HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 90.0
SUFFIX = " (ablate sweep running)"
HOLDER, HOST, PID, FOLDER, STARTED, BEAT = ("ablate.lock.holder", "ablate.lock.host", "ablate.lock.pid",
                                            "ablate.lock.folder", "ablate.lock.started", "ablate.lock.heartbeat")


def lock_name(experiment: str) -> str:
    return f"{experiment}{SUFFIX}"


def _alive_here(tags: dict[str, str]) -> bool:
    """Whether the holder may still run: always, unless it is a process of this machine that is gone."""
    if tags.get(HOST) != socket.gethostname():
        return True
    try:
        os.kill(int(tags.get(PID, "0")), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class StoreLock:
    """Held while a sweep runs against `experiment` in the store; a second sweep refuses, naming
    the running one (the store's error if it cannot be reached comes from its retry policy)."""

    def __init__(self, store, experiment: str, folder: Path, *, now=time.time) -> None:
        self.store, self.experiment, self.folder, self.now = store, experiment, folder, now
        self.holder = uuid.uuid4().hex
        self.lock_id: str | None = None
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None

    def __enter__(self) -> "StoreLock":
        for _ in range(3):  # a stale lock taken over, then created again; a lost race is refused
            if self._create():
                self._beating = threading.Thread(target=self._beat, name="ablate-store-lock", daemon=True)
                self._beating.start()
                return self
            held = self._held()
            if held is None:
                continue  # released between the two calls
            experiment_id, tags = held
            age = self.now() - float(tags.get(BEAT, "0") or 0)
            if age > STALE_SECONDS or not _alive_here(tags):
                self._retire(experiment_id)
                continue
            started = datetime.fromtimestamp(float(tags.get(STARTED, "0") or 0), timezone.utc).strftime("%H:%M:%S UTC")
            raise AblateError(
                f"the sweep '{self.experiment}' is already running against this tracking store (started "
                f"{started} by process {tags.get(PID, '?')} on {tags.get(HOST, '?')}, folder {tags.get(FOLDER, '?')}; "
                f"last heartbeat {age:.0f} s ago), so a second one would train its cells again.",
                field="tracking.experiment",
                fix="wait for it to finish, then run again (its finished cells are not re-run); if that sweep was "
                    f"killed, its lock expires {STALE_SECONDS:.0f} s after its last heartbeat.")
        raise AblateError(f"the lock of the sweep '{self.experiment}' in the tracking store changed hands three "
                          "times while this sweep tried to take it.", field="tracking.experiment",
                          fix="another sweep of this experiment is starting: wait for it, then run again.")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._beating is not None:
            self._beating.join(timeout=HEARTBEAT_SECONDS)
        if self.lock_id is not None:
            try:
                self._retire(self.lock_id)
            except Exception:  # noqa: BLE001 - an unreachable store: the lock goes stale on its own
                pass

    def _tags(self) -> dict[str, str]:
        return {HOLDER: self.holder, HOST: socket.gethostname(), PID: str(os.getpid()),
                FOLDER: str(self.folder.resolve()), STARTED: f"{self.now():.3f}", BEAT: f"{self.now():.3f}"}

    def _create(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.lock_id = self.store.retry.call(
                lambda: self.store.client.create_experiment(lock_name(self.experiment), tags=self._tags()))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS" or "already exists" in str(exc).lower() \
                    or "unique" in str(exc).lower():
                return False
            raise
        return True

    def _held(self) -> tuple[str, dict[str, str]] | None:
        experiment = self.store.retry.call(lambda: self.store.client.get_experiment_by_name(lock_name(self.experiment)))
        if experiment is None:
            return None
        return experiment.experiment_id, dict(experiment.tags)

    def _retire(self, experiment_id: str) -> None:
        """Free the lock's name (renamed to a unique one), then hide it (deleted)."""
        from mlflow.exceptions import MlflowException

        try:
            self.store.client.rename_experiment(experiment_id, f"{lock_name(self.experiment)} released {uuid.uuid4().hex}")
            self.store.client.delete_experiment(experiment_id)
        except MlflowException:
            pass  # another sweep retired it first

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.store.client.set_experiment_tag(self.lock_id, BEAT, f"{self.now():.3f}")
            except Exception:  # noqa: BLE001 - a store that blinks: the next beat tries again
                pass
