"""A tracking server with authentication: `mlflow server --app-name basic-auth` on PostgreSQL,
serving the artifacts itself, every service on 127.0.0.1. alice sweeps into her own experiment
with her credentials in the environment; bob, who may only read it, plans, reports and compares
it, and his sweep into it is refused before anything starts. Missing or wrong credentials are one
paragraph and exit 2 for sweep, plan and report, with no Ray started and no run created. No
password is ever printed."""

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.services import start_auth_mlflow_server, start_postgres

pytestmark = pytest.mark.slow

SMOKE = str(REPO / "sweeps" / "smoke.yaml")
# two cells (instances_per_task 8 and 16, one seed) of a few steps each
SMALL = ["--set", "seeds=[0]", "--set", "train.steps=4", "--set", "eval.instances_per_task=4",
         "--set", "resources.max_concurrent=2"]
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def _password() -> str:
    return "pw-" + secrets.token_urlsafe(12)


@contextlib.contextmanager
def _as(user: str, password: str):
    """This process's MLflow clients as `user` (the environment they read), restored after."""
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _ablate(cwd: Path, *args: str, user: str | None = None, password: str | None = None, timeout: float = 300) -> dict:
    """The real `ablate` with only the credentials given (none from this process's environment)."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    env["HF_HUB_OFFLINE"] = "1"
    if user is not None:
        env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password or "")
    cwd.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "ablate"), *args], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
            "seconds": time.perf_counter() - began}


def _run_count(url: str, user: str, password: str) -> int:
    from mlflow import MlflowClient

    with _as(user, password):
        client = MlflowClient(url)
        ids = [e.experiment_id for e in client.search_experiments()]
        return len(client.search_runs(ids, max_results=1000)) if ids else 0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    folder = tmp_path_factory.mktemp("auth")
    passwords = {name: _password() for name in ("postgres", "admin", "alice", "bob", "wrong")}
    services = []
    try:
        postgres, backend = start_postgres(folder, password=passwords["postgres"])
        services.append(postgres)
        server, url = start_auth_mlflow_server(folder, backend, passwords["admin"])
        services.append(server)
        with _as("admin", passwords["admin"]):
            admin = get_app_client("basic-auth", tracking_uri=url)
            admin.create_user("alice", passwords["alice"])
            admin.create_user("bob", passwords["bob"])
        at = ["--tracking-uri", url]
        facts: dict = {"url": url, "folder": folder, "passwords": passwords, "outputs": []}

        # Missing and wrong credentials, before any experiment exists: refused in seconds.
        refusals = {}
        for case, user, password in (("missing", None, None), ("wrong", "alice", passwords["wrong"])):
            for command, args in (("sweep", ["sweep", SMOKE, *at, *SMALL, "--yes"]),
                                  ("plan", ["plan", SMOKE, *at, *SMALL]), ("report", ["report", SMOKE, *at])):
                refusals[case, command] = _ablate(folder / f"refused-{case}", *args, user=user, password=password)
        facts["refusals"] = refusals
        facts["runs_after_refusals"] = _run_count(url, "admin", passwords["admin"])

        # alice's sweep creates her experiment (she gets MANAGE on it); bob is granted READ.
        facts["alice_sweep"] = _ablate(folder / "alice", "sweep", SMOKE, *at, *SMALL, "--yes", user="alice",
                                       password=passwords["alice"], timeout=1200)
        with _as("alice", passwords["alice"]):
            experiment = MlflowClient(url).get_experiment_by_name("smoke")
        facts["experiment_id"] = experiment.experiment_id if experiment is not None else None
        if experiment is not None:
            with _as("admin", passwords["admin"]):
                get_app_client("basic-auth", tracking_uri=url).grant_user_permission(
                    "bob", "experiment", experiment.experiment_id, "READ")
        facts["runs_before_bob"] = _run_count(url, "alice", passwords["alice"])

        bob = {"user": "bob", "password": passwords["bob"]}
        facts["bob_plan"] = _ablate(folder / "bob", "plan", SMOKE, *at, *SMALL, **bob)
        facts["bob_report"] = _ablate(folder / "bob", "report", SMOKE, *at, **bob)
        facts["bob_compare"] = _ablate(folder / "bob", "compare", SMOKE, "instances_per_task=8",
                                       "instances_per_task=16", *at, **bob)
        facts["bob_sweep"] = _ablate(folder / "bob", "sweep", SMOKE, *at, *SMALL, "--yes", "--force", **bob)
        facts["runs_after_bob"] = _run_count(url, "alice", passwords["alice"])
        with _as("alice", passwords["alice"]):
            client = MlflowClient(url)
            runs = client.search_runs([facts["experiment_id"]]) if facts["experiment_id"] else []
            facts["stored"] = [repr((r.data.params, r.data.tags)) for r in runs]
        # what each command printed, for reading a failure (no password: the last test checks this file too)
        shown = {k: v for k, v in facts.items() if k not in ("folder", "passwords", "refusals")}
        shown["refusals"] = {f"{case} {command}": result for (case, command), result in refusals.items()}
        (folder / "facts.json").write_text(json.dumps(shown, indent=1, default=str))
        yield facts
    finally:
        for service in reversed(services):
            service.stop()


def _refused(result: dict) -> str:
    assert result["code"] == 2, result["stdout"][-2000:] + result["stderr"][-2000:]
    assert "ablate: error:" in result["stderr"] and "Traceback" not in result["stderr"], result["stderr"]
    return result["stderr"]


def test_missing_or_wrong_credentials_are_one_paragraph_exit_2_and_start_nothing(scenario):
    for (case, command), result in scenario["refusals"].items():
        message = _refused(result)
        assert "MLFLOW_TRACKING_USERNAME" in message and "MLFLOW_TRACKING_PASSWORD" in message, message
        assert "HTTP 401" in message, message
        if case == "missing":
            assert "none is set" in message, message
        else:
            assert "user 'alice'" in message and "wrong password" in message, message
        assert result["seconds"] < 60, f"{case} {command} took {result['seconds']:.0f} s: retried?"
        assert not (scenario["folder"] / f"refused-{case}" / "ablate_runs" / "smoke" / "processes.json").exists(), \
            "no Ray was started"
    assert scenario["runs_after_refusals"] == 0, "a refused command creates no run"


def test_alice_sweeps_into_her_experiment_with_her_credentials_in_the_environment(scenario):
    result = scenario["alice_sweep"]
    assert result["code"] == 0, result["stdout"][-3000:] + result["stderr"][-3000:]
    assert scenario["experiment_id"] is not None
    # a parent run and one child run per cell, all finished
    assert scenario["runs_before_bob"] == 3, scenario["runs_before_bob"]
    report = scenario["folder"] / "alice" / "ablate_runs" / "smoke" / "report" / "report.json"
    assert report.is_file(), "the sweep's report was written"


def test_bob_with_read_permission_plans_reports_and_compares_alice_s_sweep(scenario):
    plan = scenario["bob_plan"]
    assert plan["code"] == 0, plan["stderr"][-3000:]
    assert "2 cells (2 done, 0 failed, 0 to run)" in plan["stdout"], plan["stdout"]
    report = scenario["bob_report"]
    assert report["code"] == 0, report["stdout"][-3000:] + report["stderr"][-3000:]
    assert (scenario["folder"] / "bob" / "ablate_runs" / "smoke" / "report" / "report.json").is_file()
    refused_lines = [line for line in report["stdout"].splitlines() if "not logged to the parent run" in line]
    assert len(refused_lines) == 1 and "HTTP 403" in refused_lines[0], report["stdout"]
    assert "also in the parent run" not in report["stdout"]
    assert "Traceback" not in report["stderr"]
    compare = scenario["bob_compare"]
    assert compare["code"] == 0, compare["stdout"][-3000:] + compare["stderr"][-3000:]
    assert "instances_per_task=8" in compare["stdout"] and "instances_per_task=16" in compare["stdout"]


def test_bob_s_sweep_into_alice_s_experiment_is_refused_before_anything_starts(scenario):
    message = _refused(scenario["bob_sweep"])
    assert "user 'bob' has READ permission" in message and "tracking.experiment" in message, message
    assert "EDIT" in message, message
    assert scenario["runs_after_bob"] == scenario["runs_before_bob"], "no run was created"
    assert not (scenario["folder"] / "bob" / "ablate_runs" / "smoke" / "processes.json").exists(), "no Ray was started"
    assert scenario["bob_sweep"]["seconds"] < 60


def test_no_password_is_printed_or_stored(scenario):
    outputs = [r["stdout"] + r["stderr"] for r in scenario["refusals"].values()]
    outputs += [scenario[k]["stdout"] + scenario[k]["stderr"]
                for k in ("alice_sweep", "bob_plan", "bob_report", "bob_compare", "bob_sweep")]
    outputs += scenario["stored"]
    outputs.append((scenario["folder"] / "facts.json").read_text())
    for folder in ("alice", "bob", "refused-missing", "refused-wrong"):
        for path in (scenario["folder"] / folder).rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                outputs.append(path.read_bytes().decode("utf-8", errors="replace"))
    for name, password in scenario["passwords"].items():
        assert not any(password in text for text in outputs), f"the {name} password was printed or stored"
