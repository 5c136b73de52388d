"""Bounded reachability checks of a database tracking store, before MLflow touches it.

MLflow's SQLAlchemy store retries a connection to a database that does not answer for minutes,
silently; a TCP connect with a timeout to the URI's host and port says in seconds whether a server
listens there. (The http checks live beside the other store checks in ablate/track/uri.py.)

    check_database_reachable("postgresql://user@db.example.org:5432/mlflow")
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from ablate.credentials import redact
from ablate.errors import AblateError

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def database_address(uri: str) -> tuple[str, int] | None:
    """(host, port) of a database URI; None when it names no TCP host (a local socket) or is no
    database URI."""
    parsed = urlparse(uri)
    dialect = parsed.scheme.partition("+")[0]
    if dialect not in DEFAULT_PORTS or not parsed.hostname:
        return None
    try:
        port = parsed.port
    except ValueError:
        raise AblateError(f"the tracking URI '{_redacted(uri)}' has a port that is not a number from 0 to 65535.",
                          field="tracking.tracking_uri",
                          fix=f"write it as {dialect}://USER:PASSWORD@HOST:PORT/DATABASE.") from None
    return parsed.hostname, port or DEFAULT_PORTS[dialect]


def check_database_reachable(uri: str, timeout: float = 3.0) -> None:
    """Raise an AblateError within `timeout` seconds unless a server accepts a TCP connection at
    the database URI's host and port."""
    address = database_address(uri)
    if address is None:  # no host in the URI: the client looks on this machine
        local = _local_database(uri)
        if isinstance(local, list):
            _check_sockets(uri, local, timeout)
            return
        if local is None:
            return
        address = local
    host, port = address
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise AblateError(f"the database of the tracking store '{_redacted(uri)}' is unreachable at {host}:{port} "
                          f"({reason}).", field="tracking.tracking_uri",
                          fix="start the database server (or open its port to this machine), or fix --tracking-uri.") \
            from None


def _local_database(uri: str) -> tuple[str, int] | list[str] | None:
    """Where the client of a database URI without a host connects: PostgreSQL's libpq to the host
    of `?host=` or PGHOST, else to its Unix sockets in /var/run/postgresql or /tmp (a list of
    socket paths); MySQL's driver to `?unix_socket=`, else to localhost; SQL Server to localhost."""
    import os
    from urllib.parse import parse_qs

    parsed = urlparse(uri)
    dialect = parsed.scheme.partition("+")[0]
    if dialect not in DEFAULT_PORTS:
        return None
    query = parse_qs(parsed.query)
    try:
        port = parsed.port
    except ValueError:
        port = None  # said by database_address once a host is named
    if dialect == "postgresql":
        host = (query.get("host") or [os.environ.get("PGHOST", "")])[0]
        given = (query.get("port") or [os.environ.get("PGPORT", "")])[0]
        port = port or (int(given) if given.isdigit() else DEFAULT_PORTS[dialect])
        if host and not host.startswith("/"):
            return host, port
        return [f"{folder}/.s.PGSQL.{port}" for folder in ([host] if host else ["/var/run/postgresql", "/tmp"])]
    if dialect == "mysql" and query.get("unix_socket"):
        return [query["unix_socket"][0]]
    return "localhost", port or DEFAULT_PORTS[dialect]


def _check_sockets(uri: str, paths: list[str], timeout: float) -> None:
    """An AblateError unless a server answers on one of these Unix sockets."""
    for path in paths:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(timeout)
                probe.connect(path)
            return
        except OSError:
            continue
    raise AblateError(f"the tracking store '{_redacted(uri)}' names no database host, so its client looks for the "
                      f"server on this machine's socket {' or '.join(paths)}, where none answers.",
                      field="tracking.tracking_uri",
                      fix="name the database's host (e.g. postgresql://USER@HOST:5432/DATABASE), or start the "
                          "database server on this machine.")


def _redacted(uri: str) -> str:
    """The URI without its password, for messages."""
    return redact(uri)
