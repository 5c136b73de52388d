"""MLflow: one experiment per sweep, a parent run per sweep, a child run per cell.

Everything goes through `MlflowClient` with explicit run ids (no global active run), so the
driver and Ray workers can write to the same store at once. Every call, read or write, goes
through one `RetryPolicy`. Key, tag and artifact names come from `ablate.results`.

One job per module:

    uri.py       resolving the default store; checking a store answers before anything starts
    server.py    a tracking server with authentication: credentials accepted, the experiment writable
    client.py    opening a store (`mlflow_client`); SQLite stores created whole
    retry.py     the one retry policy, which errors are transient, and refusals (401/403) said as such
    store.py     the driver's view: experiments, the parent run, cell runs by cell id
    cell_run.py  a cell's child run, written from a Ray worker
"""

from ablate.track.cell_run import CellTracker
from ablate.track.client import create_sqlite_store, mlflow_client
from ablate.track.retry import (AccessRefused, RetryPolicy, StoreUnavailable, duplicate_insert, is_transient,
                                refused_status, store_unavailable)
from ablate.track.store import Store, git_commit, provenance
from ablate.track.uri import DRIVERS, check_tracking_uri, resolve_tracking_uri, sqlite_path, store_exists

__all__ = ["AccessRefused", "CellTracker", "DRIVERS", "RetryPolicy", "Store", "StoreUnavailable", "store_unavailable", "check_tracking_uri", "create_sqlite_store",
           "duplicate_insert", "git_commit", "is_transient", "mlflow_client", "provenance", "refused_status", "resolve_tracking_uri",
           "sqlite_path", "store_exists"]
