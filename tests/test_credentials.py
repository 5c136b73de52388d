"""A password in a tracking URI never leaves where the user put it: it moves into the environment
its client reads, and nothing ablate prints, logs or stores holds it (searched for in every file
a sweep writes, Ray's session folder, the store's database and the console)."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from ablate.credentials import MASK, redact, split_credentials
from ablate.errors import AblateError
from tests.conftest import REPO


@pytest.mark.parametrize("uri,stripped,environment", [
    ("postgresql+psycopg://postgres:p%40ss@127.0.0.1:5432/mlflow", "postgresql+psycopg://postgres@127.0.0.1:5432/mlflow",
     {"PGPASSWORD": "p@ss"}),
    ("postgresql://u:x@db.example.org/mlflow?sslmode=require", "postgresql://u@db.example.org/mlflow?sslmode=require",
     {"PGPASSWORD": "x"}),
    ("https://alice:s3cret@mlflow.example.org/", "https://mlflow.example.org/",
     {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cret"}),
    ("http://[::1]:5000", "http://[::1]:5000", {}),
    # As SQLAlchemy (MLflow's database layer) reads a database URI: '/' and '#' may stand in a password.
    ("postgresql://u:p/ss@host/db", "postgresql://u@host/db", {"PGPASSWORD": "p/ss"}),
    ("postgresql://u:p#ss@[::1]:5/db", "postgresql://u@[::1]:5/db", {"PGPASSWORD": "p#ss"}),
    ("postgresql://u:@host/db", "postgresql://u@host/db", {}),  # an empty one leaves the environment's
    ("postgresql+psycopg://postgres@127.0.0.1:5432/mlflow", "postgresql+psycopg://postgres@127.0.0.1:5432/mlflow", {}),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db", {}),
])
def test_a_password_moves_from_the_uri_to_the_environment_its_client_reads(uri, stripped, environment):
    assert split_credentials(uri) == (stripped, environment)


@pytest.mark.parametrize("uri", ["https://u:SEK#RIT@127.0.0.1:9/", "postgresql://u:p@ss@host/db",
                                 "postgresql://u:pw@host:abc/db"])
def test_a_password_the_uri_syntax_hides_is_refused_with_the_fix(uri):
    with pytest.raises(ValueError, match="percent-encode"):
        split_credentials(uri)


def test_a_store_whose_client_reads_no_password_from_the_environment_is_refused():
    with pytest.raises(ValueError, match="client's own configuration"):
        split_credentials("mysql+pymysql://root:pw@127.0.0.1/mlflow")
    with pytest.raises(ValueError):
        split_credentials("postgresql://u@h/db?password=pw")


@pytest.mark.parametrize("text", [
    "could not reach postgresql+psycopg://postgres:hunter2@127.0.0.1:5432/mlflow (timeout)",
    "Results in 'https://alice:hunter2@mlflow.example.org' and s3://bucket/x",
    "dsn postgresql://u@h/db?sslmode=require&password=hunter2",
    "token: https://h/api?token=hunter2#frag",
    "mysql://root:hun@hunter2@host/db",
    "s3://bucket/path?access_key=AK&secret_key=hunter2",
])
def test_redact_masks_every_secret_and_keeps_the_rest(text):
    masked = redact(text)
    assert "hunter2" not in masked and MASK in masked
    assert redact(masked) == masked
    assert text.startswith(masked.split(MASK)[0])


def test_errors_never_show_a_password():
    error = AblateError("the store postgresql://postgres:hunter2@10.0.0.1/mlflow did not answer.",
                        field="tracking.tracking_uri", fix="check postgresql://postgres:hunter2@10.0.0.1/mlflow.")
    assert "hunter2" not in error.render() and "hunter2" not in str(error)


def test_resolving_a_uri_with_a_password_sets_the_environment(monkeypatch, tmp_path):
    from ablate.track.uri import resolve_tracking_uri

    monkeypatch.setenv("PGPASSWORD", "before")  # restored after the test (resolving sets it)
    assert resolve_tracking_uri("postgresql+psycopg://u:pw@127.0.0.1:1/db", tmp_path) == \
        "postgresql+psycopg://u@127.0.0.1:1/db"
    assert os.environ["PGPASSWORD"] == "pw"
    with pytest.raises(AblateError) as refused:
        resolve_tracking_uri("mysql://root:pw2@127.0.0.1/mlflow", tmp_path)
    assert "pw2" not in str(refused.value) and "tracking.tracking_uri" in str(refused.value)


def _files_holding(folder: Path, secret: bytes) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if secret in path.read_bytes():
                    found.append(str(path))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_a_sweep_on_a_password_protected_store_stores_no_password(tmp_path):
    """The smoke sweep with the password in the spec's tracking URI, then plan and report: the
    password is in no file the sweep wrote (its folder, MLflow's artifacts, Ray Tune's trial
    state and Ray's session logs), in no row of the database, and in no line of the output."""
    from tests.services import postgres_bin, start_postgres

    import time

    started = time.time()
    password = "pw-" + secrets.token_hex(12)
    (tmp_path / "services").mkdir()
    service, uri = start_postgres(tmp_path / "services", password=password)
    try:
        assert password in uri
        workdir = tmp_path / "work"
        workdir.mkdir()
        env = {key: value for key, value in os.environ.items() if key != "PGPASSWORD"}
        overrides = ["--set", f"tracking.tracking_uri={uri}", "--set", "seeds=[0]", "--set", "train.steps=4",
                     "--set", "eval.instances_per_task=2", "--set", "axes.instances_per_task=[8]"]
        spec = str(REPO / "sweeps" / "smoke.yaml")
        outputs = []
        for command in (["sweep", spec, *overrides], ["plan", spec, *overrides], ["report", "smoke", "--tracking-uri", uri],
                        ["report", spec, *overrides]):  # the last: a flag report lacks, refused without the password
            result = subprocess.run([*_ablate(), *command], cwd=workdir, capture_output=True, text=True,
                                    timeout=900, env={**env, "HF_HUB_OFFLINE": "1"})
            outputs.append(result.stdout + result.stderr)
            assert result.returncode == (2 if command[0] == "report" and "--set" in command else 0), \
                result.stdout + result.stderr
        assert "1/1 cells" in outputs[0] or "finished" in outputs[0], outputs[0]
        for output in outputs:
            assert password not in output
        stored = (workdir / "ablate_runs" / "smoke" / "spec.resolved.yaml").read_text()
        assert f"tracking_uri: {uri.replace(':' + password, '')}\n" in stored  # as the sweep resolved it
        holding = _files_holding(workdir, password.encode())
        for session in Path("/tmp/ray").glob("session_*"):  # Ray's logs of the runtimes started since
            if not session.is_symlink() and session.stat().st_mtime >= started:
                holding += _files_holding(session, password.encode())
        assert not holding, holding
        port = uri.rsplit(":", 1)[1].split("/")[0]
        dump = subprocess.run([postgres_bin("pg_dump"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", "mlflow"],
                              capture_output=True, env={**env, "PGPASSWORD": password}, timeout=120)
        assert dump.returncode == 0, dump.stderr
        assert b"ablate.cell_id" in dump.stdout  # the runs are there
        assert password.encode() not in dump.stdout
    finally:
        service.stop()


def _ablate() -> list[str]:
    import shutil
    import sys

    return [shutil.which("ablate", path=str(Path(sys.executable).parent)) or "ablate"]


def test_the_command_line_ray_records_holds_no_password(monkeypatch, capsys):
    """Ray records the driver's sys.argv as its job's entrypoint (dashboard, `ray list jobs`)."""
    import sys

    from ablate.cli import main

    monkeypatch.setattr(sys, "argv", ["ablate", "schema", "--tracking-uri=postgresql://u:hunter2@h/db"])
    assert main(["schema"]) == 0
    capsys.readouterr()
    assert "hunter2" not in " ".join(sys.argv) and MASK in sys.argv[-1]
