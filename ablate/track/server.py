"""An MLflow tracking server (http:// or https://) with authentication (`mlflow server --app-name
basic-auth`): checked before anything starts, in seconds, with the credentials MLflow's own client
sends (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_TOKEN, ~/.mlflow/credentials):

- `check_credentials`: the server accepts them (no HTTP 401 or 403 on a read every user may make);
- `check_can_write`: the user may write to the sweep's experiment (EDIT or MANAGE), so a sweep
  into someone else's experiment is refused before Ray starts and before any run is created.

Nothing here prints or keeps a password: messages name the environment variables and the user."""

from __future__ import annotations

from urllib.parse import urlparse

from ablate.errors import AblateError

USER_VARIABLE, PASSWORD_VARIABLE = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
TOKEN_VARIABLE = "MLFLOW_TRACKING_TOKEN"
CREDENTIALS = f"{USER_VARIABLE} / {PASSWORD_VARIABLE}"
SET_CREDENTIALS = (f"set {USER_VARIABLE} and {PASSWORD_VARIABLE} in the environment to a user of that server and its "
                   "password (the server's admin creates users: see the docs' cluster page), then run again.")
# An experiment permission that cannot write runs (MLflow's basic-auth app: READ < USE < EDIT < MANAGE).
CANNOT_WRITE = ("READ", "USE", "NO_PERMISSIONS", "DENY")


def is_server(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def _credentials(uri: str):
    """What MLflow's REST client sends to `uri` (its own resolution of the environment and files)."""
    from mlflow.utils.credentials import get_default_host_creds

    return get_default_host_creds(uri)


def _get(creds, endpoint: str, timeout: float, **params):
    """One GET with MLflow's credentials and no retries: the response whatever its status, or None
    when none came (an outage is the retry policy's to wait out and report, not this check's)."""
    from mlflow.utils.rest_utils import http_request

    try:
        return http_request(creds, endpoint, "GET", max_retries=0, timeout=timeout, raise_on_status=False,
                            params=params)
    except Exception:  # noqa: BLE001 - MLflow wraps a lost connection in a bare MlflowException
        return None


def who(creds) -> str:
    """How the credentials name the user, for messages (never the password)."""
    if creds.username:
        return f"user '{creds.username}'"
    return f"the token in {TOKEN_VARIABLE}" if creds.token else "no user"


def refused(uri: str, status: int, creds) -> AblateError:
    """The error for an HTTP 401 or 403 from the server at `uri`, naming what to set."""
    if status == 401 and not (creds.username or creds.password or creds.token or creds.auth):
        return AblateError(f"the MLflow tracking server at {uri} asks for a user name and password (HTTP 401), and "
                           f"none is set ({CREDENTIALS} are empty).", fix=SET_CREDENTIALS)
    if status == 401:
        given = f"the token in {TOKEN_VARIABLE}" if creds.token and not creds.username else \
            f"the password of {who(creds)} ({CREDENTIALS})"
        return AblateError(f"the MLflow tracking server at {uri} refused {given}: HTTP 401, an unknown user or a "
                           "wrong password.", fix=SET_CREDENTIALS)
    return AblateError(f"the MLflow tracking server at {uri} refused {who(creds)} access (HTTP 403).",
                       fix=f"ask the server's admin for access, or set {CREDENTIALS} to another user, then run again.")


def check_credentials(uri: str, timeout: float = 3.0) -> None:
    """The server accepts the credentials: a search of experiments (which any user of the server
    may make) answers neither 401 nor 403. Other answers are left to the calls that follow."""
    creds = _credentials(uri)
    response = _get(creds, "/api/2.0/mlflow/experiments/search", timeout, max_results=1)
    if response is not None and response.status_code in (401, 403):
        raise refused(uri, response.status_code, creds)


def check_can_write(uri: str, experiment: str, timeout: float = 3.0) -> None:
    """Refuse, before anything is written, a sweep into an experiment the user may only read.

    The experiment's id by name; then the user's effective permission on it from the basic-auth
    app (`GET /api/3.0/mlflow/users/permissions/get`, which any user may ask about themself).
    An experiment that does not exist yet is created by the sweep (the server decides whether the
    user may). A server without that API (no auth app, an older MLflow) is not asked: there the
    first write it refuses stops the sweep (ablate.track.retry.AccessRefused), before any cell."""
    if not is_server(uri):
        return
    creds = _credentials(uri)
    response = _get(creds, "/api/2.0/mlflow/experiments/get-by-name", timeout, experiment_name=experiment)
    if response is None:
        return
    if response.status_code in (401, 403):
        if response.status_code == 403:
            raise AblateError(f"{who(creds)} may not read the MLflow experiment '{experiment}' at {uri} (HTTP 403), "
                              "and a sweep writes to it.", field="tracking.experiment",
                              fix="ask its owner or the server's admin for EDIT permission on it, or sweep into an "
                                  "experiment of your own (--set tracking.experiment=NAME).")
        raise refused(uri, response.status_code, creds)
    if response.status_code != 200:  # 404: it does not exist yet, and the sweep creates it
        return
    experiment_id = (_json(response).get("experiment") or {}).get("experiment_id")
    permission = _permission(creds, str(experiment_id), timeout) if experiment_id is not None else None
    if permission in CANNOT_WRITE:
        raise AblateError(f"{who(creds)} has {permission} permission on the MLflow experiment '{experiment}' "
                          f"(id {experiment_id}) at {uri}, and a sweep writes to it (its runs, tags and artifacts).",
                          field="tracking.experiment",
                          fix=f"ask its owner or the server's admin to grant {who(creds)} EDIT on experiment "
                              f"{experiment_id}, or sweep into an experiment of your own (--set tracking.experiment=NAME); "
                              "reading it (ablate plan, report, compare) needs READ only.")


def _permission(creds, experiment_id: str, timeout: float) -> str | None:
    """The user's effective permission on the experiment (READ, USE, EDIT, MANAGE, NO_PERMISSIONS,
    DENY), or None where the server does not say."""
    username = creds.username
    if not username:  # a token or an auth plugin: the server says who it is
        answer = _get(creds, "/api/3.0/mlflow/users/current", timeout)
        if answer is None or answer.status_code != 200:
            return None
        username = (_json(answer).get("user") or {}).get("username")
        if not username:
            return None
    answer = _get(creds, "/api/3.0/mlflow/users/permissions/get", timeout, username=username,
                  resource_type="experiment", resource_id=experiment_id)
    if answer is None or answer.status_code != 200:
        return None
    permission = _json(answer).get("permission")
    return permission if isinstance(permission, str) else None


def _json(response) -> dict:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
