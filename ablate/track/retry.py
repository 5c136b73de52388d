"""The one retry policy of every MLflow call (driver and cells, reads and writes)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from ablate.errors import AblateError, first_line

T = TypeVar("T")
DEFAULT_RETRY_SECONDS = 300.0  # how long a store may be unreachable before a call fails (tracking.retry_seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How long every MLflow call (reads and writes, driver and cells) waits out a store that is
    briefly unavailable: a SQLite file locked by a concurrent cell, or a tracking server that is
    down or restarting. Errors that are not transient are raised at once."""

    window_seconds: float = DEFAULT_RETRY_SECONDS
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
    return StoreUnavailable(f"the tracking store did not answer for the whole retry window ({window_seconds:g} s); "
                            f"the last error: {type(exc).__name__}: {first_line(exc)}", field="tracking.retry_seconds",
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


def duplicate_insert(exc: BaseException) -> bool:
    """A unique-constraint race in the store (two writers inserting the same row)."""
    import sqlalchemy.exc

    return isinstance(exc.__cause__, sqlalchemy.exc.IntegrityError) or "UNIQUE constraint" in str(exc) \
        or "duplicate key value" in str(exc)

