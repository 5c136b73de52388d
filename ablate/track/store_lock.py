"""One `ablate sweep` per experiment per store, whichever folder or machine it starts from.

The store arbitrates: the lock is an MLflow experiment named after the sweep's experiment
(`<experiment> (ablate sweep running)`), and MLflow creates an experiment name once (a unique
name in every store: SQLite, PostgreSQL, a tracking server), so of two sweeps started at once
exactly one creates it. Its tags say who holds it (host, process, folder, start) and when it last
beat; the holder beats every HEARTBEAT_SECONDS. A lock whose holder is gone does not block for
long: one left by a process of this machine (same host name and process namespace) that no
longer runs is taken over at once, and any other once it has not beaten for STALE_SECONDS by
this machine's clock (clocks are assumed in step, as NTP keeps them). Released, the lock
experiment is renamed (the name is free again) and deleted (hidden in the UI; `mlflow gc`
removes deleted experiments for good).
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
from ablate.results import (LOCK_FOLDER as FOLDER, LOCK_HEARTBEAT as BEAT, LOCK_HOLDER as HOLDER, LOCK_HOST as HOST,
                            LOCK_PID as PID, LOCK_PID_NAMESPACE as PID_NAMESPACE, LOCK_STARTED as STARTED)
from ablate.track.retry import refused_status

HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 90.0
SUFFIX = " (ablate sweep running)"


def lock_name(experiment: str) -> str:
    return f"{experiment}{SUFFIX}"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _alive_here(tags: dict[str, str]) -> bool:
    """Whether the holder may still run: always, unless it is a process of this machine (its host
    name and process namespace) that is gone."""
    if tags.get(HOST) != socket.gethostname() or tags.get(PID_NAMESPACE, "") != _pid_namespace():
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
            if tags.get(HOLDER) == self.holder:  # created by this sweep, though the store's answer was lost
                self.lock_id = experiment_id
                self._beating = threading.Thread(target=self._beat, name="ablate-store-lock", daemon=True)
                self._beating.start()
                return self
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
        return {HOLDER: self.holder, HOST: socket.gethostname(), PID: str(os.getpid()), PID_NAMESPACE: _pid_namespace(),
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
        except MlflowException as exc:
            if refused_status(exc) is not None:  # another user's lock, which this user may not remove
                raise AblateError(
                    f"the sweep '{self.experiment}' holds a lock in the tracking store that its holder left behind "
                    f"(the experiment '{lock_name(self.experiment)}', id {experiment_id}), and this user may not "
                    "remove it.", field="tracking.experiment",
                    fix=f"ask its holder or the server's admin to delete experiment {experiment_id}, then run again.") \
                    from None
            # otherwise another sweep retired it first

    def _beat(self) -> None:
        import sys

        warned = False
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                held = self._held()
                if held is None or held[0] != self.lock_id or held[1].get(HOLDER) != self.holder:
                    if not warned:  # taken over (this sweep looked stale): say so, once
                        print(f"ablate: warning: the lock of the sweep '{self.experiment}' in the tracking store was "
                              "taken over by another sweep (this one's heartbeat was late); cells both run may be "
                              "trained twice.", file=sys.stderr)
                        warned = True
                    continue
                self.store.client.set_experiment_tag(self.lock_id, BEAT, f"{self.now():.3f}")
            except Exception:  # noqa: BLE001 - a store that blinks: the next beat tries again
                pass
