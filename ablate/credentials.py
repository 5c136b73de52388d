"""Secrets stay where the user put them.

A password in a tracking URI (`postgresql+psycopg://user:PASSWORD@host/db`,
`https://user:PASSWORD@mlflow.example.org`) is moved, when the URI is resolved, into the
environment variable the store's own client reads (libpq's `PGPASSWORD`; MLflow's
`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`), and the URI goes on without it: into
the spec ablate writes, the plan, MLflow, Ray Tune's trial config and the console. Ray workers of
a local runtime inherit the driver's environment; the nodes of a cluster get the credentials the
way the ecosystem gives them (their own environment, a Kubernetes Secret, `~/.pgpass`), never as
trial parameters.

`redact` is the second line of defence, applied wherever ablate prints or stores text that may
hold a URI (errors, the resolved spec): any `scheme://user:secret@` and `?password=` / `token=`
value becomes `***`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*):(?P<secret>[^@\s'\"]+)@")
_QUERY = re.compile(r"(?i)(?P<head>[?&;](?:password|passwd|pwd|token|access_token|secret|sslpassword|api_key)=)"
                    r"(?P<secret>[^&;\s'\"#]+)")

# scheme (before any +driver) -> the environment variables its client reads: (user, password);
# None where the URI's user name stays in the URI.
ENVIRONMENT = {
    "postgresql": (None, "PGPASSWORD"),  # libpq (psycopg, psycopg2) reads it when the URI has no password
    "http": ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),  # MLflow's REST client: basic auth
    "https": ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
}


def redact(text: str) -> str:
    """`text` with every password or token in a URI replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m.group('head')}{MASK}", text)


def has_secret(text: str) -> bool:
    return redact(text) != text


def split_credentials(uri: str) -> tuple[str, dict[str, str]]:
    """(the URI without its password, the environment that gives the password back to the
    store's client). A URI without a password comes back as it is, with no environment.

    Raises ValueError for a URI whose client reads no password from the environment (the fix:
    that client's own configuration file)."""
    parts = urlsplit(uri)
    if parts.password is None and not _QUERY.search(uri):
        return uri, {}
    dialect = parts.scheme.partition("+")[0].lower()
    if dialect not in ENVIRONMENT or _QUERY.search(uri):
        raise ValueError(f"the {dialect or 'URI'} store's client reads no password from the environment, so ablate "
                         "cannot keep the password out of what it stores; leave it out of the URI and give it in the "
                         "client's own configuration (e.g. ~/.my.cnf for MySQL), then run again")
    user_variable, password_variable = ENVIRONMENT[dialect]
    environment = {password_variable: unquote(parts.password or "")}
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    if user_variable is not None:
        environment[user_variable] = unquote(parts.username or "")
    elif parts.username:
        netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), environment
