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
# user:secret@ up to the last @ before the end of the URI (a password may hold an unescaped @).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*):(?P<secret>[^\s'\"]*)@(?=[^@\s'\"]*(?:[\s'\"]|$))")
_QUERY = re.compile(r"(?i)(?P<head>[?&;](?:password|passwd|pwd|token|access_token|session_token|secret|secret_key|"
                    r"access_key|sslpassword|api_key|api-key)=)(?P<secret>[^&;\s'\"#]+)")

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


def _userinfo(uri: str) -> tuple[str | None, str | None]:
    """(user, password) as the store's own client reads them: SQLAlchemy's URL parser for a
    database (the one MLflow uses: a password may hold '/', '#' or '?'), urllib's otherwise."""
    scheme = uri.partition("://")[0].lower()
    if scheme.partition("+")[0] in ("postgresql", "mysql", "mssql", "oracle"):
        from sqlalchemy.engine import make_url

        url = make_url(uri)
        return url.username, url.password
    parts = urlsplit(uri)
    return (unquote(parts.username) if parts.username else None), (unquote(parts.password) if parts.password
                                                                   is not None else None)


def split_credentials(uri: str) -> tuple[str, dict[str, str]]:
    """(the URI without its password, the environment that gives the password back to the
    store's client). A URI without a password comes back as it is, with no environment.

    Raises ValueError, with the fix, for a password ablate cannot move out of the URI: one in its
    query, one whose client reads no password from the environment, or one the URI's syntax
    hides (an unescaped '#' or '/' in an http(s) URI)."""
    dialect = uri.partition("://")[0].partition("+")[0].lower()
    if _QUERY.search(uri):
        variable = ENVIRONMENT.get(dialect, (None, None))[1]
        raise ValueError("the URI's query holds a password or token; leave it out of the URI and give it "
                         + (f"in {variable}" if variable else "in the client's own configuration"))
    try:
        user, password = _userinfo(uri)
    except ValueError as exc:  # e.g. a port that is not a number
        raise ValueError(f"it does not parse as a URI ({exc}); percent-encode special characters in the password "
                         "(e.g. %40 for @, %2F for /, %23 for #)") from None
    if password is None:
        if has_secret(uri):
            raise ValueError("part of it looks like a password the URI's syntax hides; percent-encode special "
                             "characters in the password (e.g. %23 for #, %2F for /)")
        return uri, {}
    if dialect not in ENVIRONMENT:
        raise ValueError(f"the {dialect or 'URI'} store's client reads no password from the environment, so ablate "
                         "cannot keep the password out of what it stores; leave it out of the URI and give it in the "
                         "client's own configuration (e.g. ~/.my.cnf for MySQL), then run again")
    user_variable, password_variable = ENVIRONMENT[dialect]
    environment = {password_variable: password} if password else {}  # an empty one leaves the environment's
    if user_variable is not None and user:
        environment[user_variable] = user
    stripped = _without_password(uri, user if user_variable is None else None)
    if has_secret(stripped) or stripped.partition("://")[2].split("/")[0].count("@") > 1:
        raise ValueError("part of it still looks like a password once the password is taken out; percent-encode "
                         "special characters in the password (e.g. %40 for @, %23 for #)")
    return stripped, environment


def _without_password(uri: str, user: str | None) -> str:
    """The URI with its user info replaced by `user` (None: none): as SQLAlchemy renders it for a
    database (so the host is the one its parser saw), cut at the user info's last @ otherwise."""
    scheme, _, rest = uri.partition("://")
    if scheme.partition("+")[0].lower() in ("postgresql", "mysql", "mssql", "oracle"):
        from sqlalchemy.engine import make_url

        return make_url(uri)._replace(password=None).render_as_string(hide_password=False)
    authority_end = len(rest)
    at = rest.rfind("@")  # the user info ends at the last @ of the authority
    for stop in "/?#":
        found = rest.find(stop, at + 1 if at >= 0 else 0)
        if found != -1:
            authority_end = min(authority_end, found)
    host = rest[at + 1:authority_end] if at >= 0 else rest[:authority_end]
    prefix = f"{quote(user, safe='')}@" if user else ""
    return f"{scheme}://{prefix}{host}{rest[authority_end:]}"
