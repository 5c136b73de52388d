"""Real services for the cluster test, each on 127.0.0.1, started by the test and stopped by PID:
PostgreSQL from Debian's packages (as the `postgres` user, initdb in a temporary folder), an
S3-compatible server (moto's server mode), `mlflow server` on both, and Ray nodes (`ray start`)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from tests.conftest import descendants, wait_until

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Service:
    """A started process (its own process group), stopped with everything below it."""

    def __init__(self, name: str, process: subprocess.Popen, log: Path) -> None:
        self.name, self.process, self.log = name, process, log

    def stop(self, signum: int = signal.SIGTERM, grace: float = 15) -> None:
        below = descendants(self.process.pid)
        for sig in (signum, signal.SIGKILL):
            for pid in [self.process.pid, *below]:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        for pid in below:  # helpers that outlived their leader
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if getattr(self, "remove_after", None):
            shutil.rmtree(self.remove_after, ignore_errors=True)

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _start(name: str, command: list[str], folder: Path, env: dict | None = None, **popen) -> Service:
    log = folder / f"{name}.log"
    process = subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, **(env or {})}, **popen)
    return Service(name, process, log)


def postgres_bin(program: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}")) or [shutil.which(program)]
    if not found[-1]:
        raise AssertionError("PostgreSQL is needed (Debian: apt-get install postgresql); .ci/run installs it")
    return found[-1]


def start_postgres(folder: Path, password: str | None = None) -> tuple[Service, str]:
    """A PostgreSQL server with one database `mlflow`; returns it and its SQLAlchemy URI. With a
    password, TCP connections need it (scram-sha-256) and the URI carries it; the local socket,
    which only the test uses to create the database, stays trusted."""
    # Outside the test's own folders, which only root may enter: the postgres user must reach it.
    data = Path(tempfile.mkdtemp(prefix="ablate-pgdata-"))
    as_postgres: dict = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: Debian's `postgres` user runs it
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
        as_postgres = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = data / "pwfile"  # initdb reads the superuser's password from it, then it is removed
        pwfile.write_text(password + "\n")
        if as_postgres:
            os.chown(pwfile, as_postgres["user"], as_postgres["group"])
        auth = ["--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={pwfile}"]
    subprocess.run([postgres_bin("initdb"), "-D", str(data / "db"), "-U", "postgres", *auth, "-E", "UTF8"],
                   check=True, capture_output=True, **as_postgres)
    if password is not None:
        pwfile.unlink()
    port = free_port()
    service = _start("postgres", [postgres_bin("postgres"), "-D", str(data / "db"), "-h", "127.0.0.1", "-p", str(port),
                                  "-k", str(data), "-c", "fsync=off"], folder, **as_postgres)
    wait_until(lambda: listening(port) or service.process.poll() is not None, 60, "PostgreSQL")
    assert service.process.poll() is None, service.tail()
    wait_until(lambda: subprocess.run([postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                      capture_output=True).returncode == 0, 60, "PostgreSQL to accept connections")
    subprocess.run([postgres_bin("createdb"), "-h", str(data), "-p", str(port), "-U", "postgres", "mlflow"],
                   check=True, capture_output=True)
    service.remove_after = data  # type: ignore[attr-defined]
    user = "postgres" if password is None else f"postgres:{password}"
    return service, f"postgresql+psycopg://{user}@127.0.0.1:{port}/mlflow"


def start_s3(folder: Path, bucket: str) -> tuple[Service, str]:
    """moto's S3-compatible server with one bucket; returns it and its endpoint URL."""
    import boto3

    port = free_port()
    service = _start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], folder, S3_ENV)
    wait_until(lambda: listening(port), 60, "the S3 server")
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, **_s3_credentials()).create_bucket(Bucket=bucket)
    return service, endpoint


def _s3_credentials() -> dict:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_ENV["AWS_DEFAULT_REGION"]}


def bucket_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_s3_credentials())
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def _serving(service: Service, port: int, what: str) -> str:
    """The server's URL once its /health answers (a server that exits fails with its log's tail)."""
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert service.process.poll() is None, service.tail()
        try:
            return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
        except OSError:
            return False

    wait_until(up, 180, what)
    return url


def start_mlflow_server(folder: Path, backend: str, artifacts: str, s3_endpoint: str) -> tuple[Service, str]:
    """`mlflow server` on PostgreSQL, proxying artifacts to the S3 bucket; returns it and its URL."""
    port = free_port()
    service = _start("mlflow", [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                                "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", str(port),
                                "--workers", "1"],
                     folder, {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint})
    return service, _serving(service, port, "the MLflow server")


def start_ray_node(folder: Path, name: str, env: dict, head_port: int | None = None, cpus: int = 1,
                   resources: str | None = None) -> Service:
    """`ray start --block` for a head node (head_port None: it listens on a free port, see
    `service.port`) or a worker node joining the head at 127.0.0.1:head_port."""
    ray = str(Path(sys.executable).parent / "ray")
    command = [ray, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus), "--num-gpus", "0",
               "--disable-usage-stats"]
    if resources:
        command += ["--resources", resources]
    if head_port is None:
        port = free_port()
        command += ["--head", "--port", str(port), "--include-dashboard", "false"]
    else:
        port = head_port
        command += ["--address", f"127.0.0.1:{head_port}"]
    service = _start(name, command, folder, env)
    service.port = port  # type: ignore[attr-defined]
    return service


def start_auth_mlflow_server(folder: Path, backend: str, admin_password: str) -> tuple[Service, str]:
    """`mlflow server --app-name basic-auth` on `backend`, serving the artifacts itself from a
    folder under `folder`; its users and permissions in their own SQLite file (the auth config
    MLFLOW_AUTH_CONFIG_PATH names, with the admin `admin` and every user's default permission
    READ). Returns it and its URL."""
    import secrets

    port = free_port()
    config = folder / "basic_auth.ini"
    config.touch(mode=0o600)
    config.write_text("[mlflow]\n"
                      "default_permission = READ\n"
                      f"database_uri = sqlite:///{folder / 'basic_auth.db'}\n"
                      "admin_username = admin\n"
                      f"admin_password = {admin_password}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job workers: CPU for the sweep
    service = _start("mlflow-auth", [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                                     "--backend-store-uri", backend, "--serve-artifacts",
                                     "--artifacts-destination", str(folder / "artifacts"),
                                     "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], folder, env)
    return service, _serving(service, port, "the MLflow server with basic-auth")
