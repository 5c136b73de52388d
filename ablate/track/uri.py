"""Tracking URIs: resolving the default store, and checking a store is reachable before anything starts."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlparse

from ablate.errors import AblateError
from ablate.files import cannot_write_in


def resolve_tracking_uri(uri: str | None, workdir: Path) -> str:
    """Default `sqlite:///mlflow.db` in the working directory; relative SQLite paths made absolute
    so Ray workers (which run elsewhere) write to the same file. A password in the URI moves into
    this process's environment, where the store's client reads it (and a local Ray runtime's
    workers inherit it): the URI returned holds none (ablate.credentials)."""
    import os

    from ablate.credentials import redact, split_credentials

    uri = uri or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((workdir / uri[len("sqlite:///"):]).resolve())
    try:
        uri, environment = split_credentials(uri)
    except ValueError as exc:
        raise AblateError(f"the tracking URI '{redact(uri)}' holds a password: {exc}.",
                          field="tracking.tracking_uri", fix="leave the password out of the URI.") from None
    os.environ.update(environment)
    return uri


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_tracking_uri(uri: str, timeout: float = 3.0) -> None:
    """Fail fast (before anything starts) when the store cannot be reached, or (a tracking server)
    refuses the credentials in the environment (ablate.track.server)."""
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
        from ablate.track.server import check_credentials

        check_credentials(uri, timeout)  # a 401 or 403 said now, in one paragraph, not after minutes of retries
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

