"""A sweep on a two-node Ray cluster with an MLflow server on PostgreSQL and S3 artifact storage.

Run by tests/test_cluster.py inside a network namespace of its own whose only interface is
loopback (`unshare --net`): Ray's cluster mode binds every interface and advertises the machine's
address, so the namespace is what keeps this cluster on 127.0.0.1. It starts PostgreSQL, an S3
server (moto), `mlflow server`, a Ray head and a worker node (both with token authentication),
tries what must be refused, runs a sweep, kills the worker node mid-cell, and writes what it saw
to facts.json for the test to check. Everything it started is stopped by PID at the end.

    python -m tests.cluster_scenario OUT_DIR
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import REPO
from tests.services import (S3_ENV, Service, bucket_keys, listening, start_mlflow_server, start_postgres,
                            start_ray_node, start_s3, wait_until)

BUCKET = "ablate"


def write_spec(folder: Path) -> Path:
    """The smoke spec as two cells (one per node) long enough to be killed mid-way."""
    spec = yaml.safe_load((REPO / "sweeps" / "smoke.yaml").read_text())
    spec.update(name="cluster", seeds=[0, 1], axes={"instances_per_task": [8]},
                resources={"max_concurrent": 2, "max_failures": 1})
    spec["train"].update(steps=160, checkpoint_every=20, log_every=10)
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def ablate(args: list[str], env: dict, cwd: Path, timeout: float = 300) -> dict:
    exe = str(Path(sys.executable).parent / "ablate")
    done = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return {"code": done.returncode, "stdout": done.stdout[-4000:], "stderr": done.stderr[-2000:]}


def cluster_nodes(address: str, env: dict) -> list[dict]:
    """Alive nodes as {id, role} (role from the custom resource each node was started with)."""
    probe = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
             "print(json.dumps([{'id': n['NodeID'], 'role': 'head' if 'head_node' in n['Resources'] else 'worker'} "
             "for n in ray.nodes() if n['Alive']]))" % address)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else []


def cell_runs(url: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("cluster")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")


def last_step(url: str, run_id: str) -> int:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(tracking_uri=url).get_metric_history(run_id, "train_loss")
    return max((m.step for m in history), default=-1)


def rows_in_postgres(backend: str) -> list[tuple[str, str]]:
    """(role tag, status) of every run, read from PostgreSQL itself."""
    import psycopg

    with psycopg.connect(backend.replace("postgresql+psycopg://", "postgresql://")) as connection:
        return connection.execute("SELECT t.value, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                                  "WHERE t.key = 'ablate.role'").fetchall()


def main(folder: Path) -> dict:
    facts: dict = {}
    services: list[Service] = []
    try:
        postgres, backend = start_postgres(folder)
        services.append(postgres)
        s3, endpoint = start_s3(folder, BUCKET)
        services.append(s3)
        mlflow_server, url = start_mlflow_server(folder, backend, f"s3://{BUCKET}/mlflow", endpoint)
        services.append(mlflow_server)
        ray_env = {**S3_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                   # a dead node is noticed in seconds, not the default half minute
                   "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                   "RAY_health_check_failure_threshold": "3"}
        head = start_ray_node(folder, "head", ray_env, resources='{"head_node": 1}')
        services.append(head)
        wait_until(lambda: listening(head.port), 120, "the Ray head")
        worker = start_ray_node(folder, "worker", ray_env, head_port=head.port, resources='{"worker_node": 1}')
        services.append(worker)
        address = f"127.0.0.1:{head.port}"
        driver_env = {**os.environ, **ray_env, "HF_HUB_OFFLINE": "1"}
        nodes = wait_until(lambda: (lambda n: n if len(n) == 2 else None)(cluster_nodes(address, driver_env)),
                           180, "two Ray nodes")
        worker_id = next(n["id"] for n in nodes if n["role"] == "worker")[:8]
        head_id = next(n["id"] for n in nodes if n["role"] == "head")[:8]
        facts["nodes"] = {"head": head_id, "worker": worker_id}

        spec = write_spec(folder)
        storage = f"s3://{BUCKET}/ray?endpoint_override={endpoint.removeprefix('http://')}&scheme=http"
        # What cannot work on two nodes is refused before anything starts.
        facts["sqlite_store"] = ablate(["sweep", str(spec), "--address", address, "--storage-path", storage],
                                       driver_env, folder)
        facts["default_storage"] = ablate(["sweep", str(spec), "--address", address, "--tracking-uri", url],
                                          driver_env, folder)
        no_token = {k: v for k, v in driver_env.items() if not k.startswith("RAY_AUTH")}
        facts["without_token"] = ablate(["sweep", str(spec), "--address", address, "--tracking-uri", url,
                                         "--storage-path", storage], no_token, folder)
        facts["runs_after_refusals"] = len(cell_runs(url))

        exe = str(Path(sys.executable).parent / "ablate")
        sweep = subprocess.Popen([exe, "sweep", str(spec), "--address", address, "--tracking-uri", url,
                                  "--storage-path", storage], cwd=folder, env=driver_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            def on_worker_past_checkpoint():
                runs = {r.info.run_id: r.data.tags.get("ablate.node_id") for r in cell_runs(url)}
                there = [run_id for run_id, node in runs.items() if node == worker_id]
                if len(runs) == 2 and there and last_step(url, there[0]) >= 30:
                    return runs
                return None

            facts["ran_on_before_kill"] = sorted(wait_until(on_worker_past_checkpoint, 400,
                                                            "a cell on the worker node past step 20").values())
            worker.stop(signal.SIGKILL)
            facts["killed_worker_at"] = time.time()
            output, _ = sweep.communicate(timeout=600)
        finally:
            if sweep.poll() is None:
                os.killpg(sweep.pid, signal.SIGKILL)
                output = "(killed)"
        facts["sweep"] = {"code": sweep.returncode, "stdout": output[-6000:]}
        facts["cells"] = [{"status": r.info.status, "node": r.data.tags.get("ablate.node_id"),
                           "resumed_from_step": int(r.data.tags.get("ablate.resumed_from_step", "0")),
                           "rougeL": r.data.metrics.get("rougeL"), "run_id": r.info.run_id} for r in cell_runs(url)]
        facts["postgres_rows"] = rows_in_postgres(backend)
        facts["artifact_keys"] = bucket_keys(endpoint, BUCKET, "mlflow/")
        facts["checkpoint_keys"] = [k for k in bucket_keys(endpoint, BUCKET, "ray/") if "/checkpoint_" in k]
    except BaseException as exc:
        facts["error"] = f"{type(exc).__name__}: {exc}"
        facts["logs"] = {s.name: s.tail() for s in services}
    finally:
        for service in reversed(services):
            service.stop()
        facts["left_running"] = [s.name for s in services if s.process.poll() is None]
    return facts


if __name__ == "__main__":
    out = Path(sys.argv[1])
    result = main(out)
    (out / "facts.json").write_text(json.dumps(result, indent=1, default=str))
