"""Bounded reachability checks of a database tracking store, before MLflow touches it.

MLflow's SQLAlchemy store retries a connection to a database that does not answer for minutes,
silently; a TCP connect with a timeout to the URI's host and port says in seconds whether a server
listens there. (The http checks live beside the other store checks in ablate/track/uri.py.)

    check_database_reachable("postgresql://user@db.example.org:5432/mlflow")
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

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
    if address is None:
        return
    host, port = address
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise AblateError(f"the database of the tracking store '{_redacted(uri)}' is unreachable at {host}:{port} "
                          f"({reason}).", field="tracking.tracking_uri",
                          fix="start the database server (or open its port to this machine), or fix --tracking-uri.") \
            from None


def _redacted(uri: str) -> str:
    """The URI without its password, for messages."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    return uri.replace(f":{parsed.password}@", ":***@", 1)
