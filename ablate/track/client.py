"""Opening a store: the one way ablate makes an `MlflowClient`, and SQLite stores created whole."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ablate.track.uri import sqlite_path


def mlflow_client(uri: str):
    """The one way ablate opens a store. A SQLite store that does not exist yet is made whole first
    (`create_sqlite_store`), so every process sees either no file or a fully migrated one. A new
    database store is given its tables by the first client that opens it: two processes opening
    an empty database at once (a sweep's status prefetch and its driver) race to create them,
    and the one that loses waits for the other's tables and opens them."""
    import time

    from mlflow.tracking import MlflowClient

    from ablate.track.retry import duplicate_insert

    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        create_sqlite_store(path)
    for attempt in range(6):
        try:
            return MlflowClient(tracking_uri=uri)
        except Exception as exc:  # noqa: BLE001 - only the creation race is waited out
            if attempt == 5 or not (duplicate_insert(exc) or "already exists" in str(exc)):
                raise
            time.sleep(0.5 * (attempt + 1))


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

