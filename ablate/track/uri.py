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
        raise AblateError(f"the tracking URI '{redact(uri)}' cannot be used as given: {exc}.",
                          field="tracking.tracking_uri",
                          fix="give the password in the environment instead (PGPASSWORD for PostgreSQL; "
                              "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for an MLflow server).") from None
    os.environ.update(environment)
    return uri


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


# The stores ablate runs sweeps on, as every message about a tracking URI says them.
SUPPORTED_STORES = ("sqlite:///PATH (a database file here, e.g. sqlite:///mlflow.db), http(s)://HOST:PORT (an "
                    "MLflow server), or postgresql://, mysql:// or mssql://USER@HOST/DATABASE")


def check_store_kind(uri: str) -> None:
    """The kind of store a tracking URI names, checked without touching it (so `validate` says it
    too): one ablate supports with the installed MLflow, written so MLflow reads it as meant; else
    an AblateError saying what is supported and the fix."""
    field = "tracking.tracking_uri"
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    dialect = scheme.partition("+")[0]
    if uri.lower().partition("://")[0] in ("databricks", "databricks-uc") or dialect in ("databricks", "uc"):
        raise AblateError(f"'{uri}' names a Databricks workspace, which ablate does not support as a tracking store.",
                          field=field, fix=f"use {SUPPORTED_STORES}.")
    if scheme in ("", "file"):
        from importlib.metadata import version

        raise AblateError(f"'{uri}' names a folder store (MLflow's file backend), which MLflow {version('mlflow')} "
                          "refuses: the file backend is in maintenance mode.", field=field,
                          fix="use a SQLite file, e.g. sqlite:///mlflow.db (`mlflow migrate-filestore --source FOLDER "
                              "--target sqlite:///mlflow.db` copies the runs of an existing folder store into one).")
    if dialect == "sqlite":
        path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
        if path is None:
            raise AblateError(f"'{uri}' is not a SQLite URI MLflow reads as a file: the path follows three slashes.",
                              field=field, fix="write sqlite:///mlflow.db (a path from the working directory) or "
                                               "sqlite:////abs/path/mlflow.db.")
        if not path.strip() or path.endswith("/") or parsed.query or Path(path).is_dir():
            raise AblateError(f"'{uri}' names no database file" + (f" ('{path}' is a folder)." if path.strip("/")
                              and Path(path).is_dir() else "."), field=field,
                              fix="name the file after the three slashes, e.g. sqlite:///mlflow.db.")
        return
    if scheme in ("http", "https"):
        try:
            parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise AblateError(f"the tracking URI '{uri}' has a port that is not a number from 0 to 65535.",
                              field=field, fix=f"write it as {scheme}://HOST:PORT, e.g. {scheme}://127.0.0.1:5000.") \
                from None
        if not parsed.hostname:
            raise AblateError(f"the tracking URI '{uri}' names no host.", field=field,
                              fix=f"write it as {scheme}://HOST:PORT, e.g. {scheme}://127.0.0.1:5000.")
        return
    if dialect in DRIVERS:  # its driver is checked once the server answers (check_tracking_uri)
        return
    raise AblateError(f"unsupported tracking URI '{uri}' (scheme '{parsed.scheme}').", field=field,
                      fix=f"use {SUPPORTED_STORES}.")


def check_tracking_uri(uri: str, timeout: float = 3.0) -> None:
    """Fail fast (before anything starts) when the store cannot be reached, or (a tracking server)
    refuses the credentials in the environment (ablate.track.server)."""
    check_store_kind(uri)
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
    scheme = urlparse(uri).scheme
    dialect, _, driver = scheme.partition("+")
    wanted = (driver,) if driver else DRIVERS.get(dialect, ())
    if wanted and not any(_installed(name) for name in wanted):
        raise AblateError(f"the tracking store '{scheme}://...' needs the Python driver {' or '.join(wanted)}, "
                          "which is not installed.", field="tracking.tracking_uri",
                          fix=INSTALL.get(dialect, f"install {wanted[0]} (pip install {wanted[0]})") + ".")


INSTALL = {"postgresql": 'install the cluster extra: pip install -e ".[cluster]" (PostgreSQL via psycopg)',
           "mysql": "install a MySQL driver: pip install pymysql",
           "mssql": "install a SQL Server driver: pip install pyodbc (with Microsoft's ODBC driver for SQL Server)"}


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing, or a malformed one
        return False


def store_exists(uri: str) -> bool:
    path = sqlite_path(uri)
    return path is None or path.is_file()

