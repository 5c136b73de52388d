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
                status = refused_status(exc)
                if status is not None:  # credentials or permission: waiting changes nothing
                    raise access_refused(exc, status) from exc
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


class AccessRefused(AblateError):
    """The tracking server refused a call: HTTP 401 (no or wrong credentials) or 403 (the user may
    not do it, e.g. write to an experiment it may only read). Never retried."""

    def __init__(self, message: str, *, status: int, fix: str) -> None:
        self.status = status
        super().__init__(message, fix=fix)


def access_refused(exc: BaseException, status: int) -> AccessRefused:
    """The one-paragraph error for a call the server refused (the user named, never a password)."""
    import os

    from ablate.track.server import CREDENTIALS, SET_CREDENTIALS, USER_VARIABLE

    user = os.environ.get(USER_VARIABLE)
    named = f" user '{user}'" if user else ""
    if status == 401:
        return AccessRefused(f"the tracking server refused the credentials of{named or ' this process'} (HTTP 401; "
                             f"{CREDENTIALS} {'hold no user' if not user else 'name an unknown user or a wrong password'}): "
                             f"{first_line(exc)}", status=status, fix=SET_CREDENTIALS)
    return AccessRefused(f"the tracking server refused{named or ' this process'} the call (HTTP 403: no permission): "
                         f"{first_line(exc)}", status=status,
                         fix="ask the experiment's owner or the server's admin for EDIT permission on it, or write to "
                             f"an experiment of your own (--set tracking.experiment=NAME), or set {CREDENTIALS} to "
                             "a user who may.")


def refused_status(exc: BaseException) -> int | None:
    """401 or 403 when the tracking server refused the call (credentials, permission), else None."""
    import requests
    from mlflow.exceptions import MlflowException

    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, MlflowException):
            status = error.get_http_status_code()
            if status in (401, 403):
                return status
            # a refusal whose body is not MLflow's JSON error keeps only its text ("error code 403 != 200")
            found = re.search(r"error code (40[13])\b", str(error))
            if found:
                return int(found.group(1))
        if isinstance(error, requests.exceptions.HTTPError) and error.response is not None \
                and error.response.status_code in (401, 403):
            return error.response.status_code
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether a store error may pass by itself: classified by type where MLflow keeps one. A
    refusal (HTTP 401 or 403: credentials, permission) never is."""
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE, ErrorCode

    if refused_status(exc) is not None:
        return False
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

