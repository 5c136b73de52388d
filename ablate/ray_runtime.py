"""The Ray runtime a sweep runs on: a Ray cluster at an address, or a local runtime of our own."""

from __future__ import annotations

import os
from contextlib import contextmanager

from ablate.errors import AblateError, first_line
from ablate.processes import ProcessRecord


def check_ray_address(address: str) -> None:
    """Fail before anything starts when a Ray cluster address cannot be reached."""
    import socket
    from urllib.parse import urlparse

    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    try:
        host, port = parsed.hostname, parsed.port or (10001 if address.startswith("ray://") else 6379)
    except ValueError:
        raise AblateError(f"'{address}' is not a Ray address.", field="--address",
                          fix="write ray://HOST:10001 (Ray client) or HOST:6379 (the head's GCS).") from None
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise AblateError(f"the Ray cluster at '{address}' is unreachable ({exc.strerror or exc}).",
                          field="--address", fix="start it (ray start --head) or fix --address; "
                                                 "leave --address out to run on this machine.") from None


@contextmanager
def ray_runtime(address: str | None, record: ProcessRecord | None = None):
    """Connect to the Ray cluster at `address`, or start a local runtime (stopped on exit, and its
    processes recorded in `record` while it runs, so that none outlives it).

    The local runtime serves on 127.0.0.1 only: Ray's single-machine mode (read when ray is first
    imported, and inherited by its workers) keeps every Ray service on the loopback address.
    """
    if not address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        _local_token_auth()
    import ray

    from ray.exceptions import AuthenticationError

    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            _start_local(ray)
    except (ConnectionError, RuntimeError, AuthenticationError) as exc:
        if not address:
            raise AblateError(f"the local Ray runtime did not start ({_connect_failure(exc)}).",
                              fix="check that /tmp is writable and has space, then run the same command again.") from None
        raise AblateError(f"cannot connect to the Ray cluster at '{address}' ({_connect_failure(exc)}).",
                          field="--address",
                          fix="check the address (ray status on the head node); for a cluster with token "
                              "authentication set RAY_AUTH_MODE=token and make its token available "
                              "(~/.ray/auth_token or RAY_AUTH_TOKEN).") from None
    if record is not None and not address:
        record.watch()
    try:
        yield
    finally:
        try:
            ray.shutdown()
        finally:
            if record is not None and not address:
                record.close()


LOCAL_START_ATTEMPTS = 3  # Ray waits 30 s (fixed) for its raylet; a busy machine can take longer


def _start_local(ray) -> None:
    """A fresh local runtime of our own (address="local"), without the dashboard. Ray gives its
    raylet a fixed 30 s to register and fails with a bare Exception when a loaded machine takes
    longer: the start is tried again, and then reported as one message, not a traceback."""
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            return
        except (ConnectionError, RuntimeError):
            raise
        except Exception as exc:  # noqa: BLE001 - Ray raises Exception itself for a start that timed out
            ray.shutdown()  # stops what the failed start left running
            if attempt == LOCAL_START_ATTEMPTS:
                raise AblateError(f"the local Ray runtime did not start ({first_line(exc)}), {attempt} times.",
                                  fix="the machine is probably overloaded: run the same command again when it is "
                                      "less busy (finished cells are kept), or lower resources.max_concurrent.") from None


def _local_token_auth() -> None:
    """A new local Ray runtime turns on token authentication by itself (a token in
    ~/.ray/auth_token) and warns on every start that it did so, unless RAY_AUTH_MODE is set: ask
    for that same mode explicitly, so the sweep starts quietly and just as protected. A mode the
    user set is kept. Ray reads the variable at import; a process that imported Ray already
    re-reads its configuration, as Ray does when it turns the mode on itself."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    import sys

    if "ray._raylet" in sys.modules:
        try:
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):
            pass


def _connect_failure(exc: BaseException) -> str:
    """Why ray.init failed, in a few words (Ray's messages embed whole tracebacks)."""
    text = "\n".join(str(getattr(e, "message", e)) for e in (exc, exc.__cause__) if e is not None)
    if "InvalidAuthToken" in text or "Authentication token" in text or "Unauthenticated" in text:
        return "the cluster uses token authentication, and this process's token is missing or wrong"
    kept = "\n".join(line for line in text.splitlines() if not line.startswith("Traceback"))
    return first_line(kept) or type(exc).__name__


def check_cluster_resources(cpus_per_cell: float, gpus_per_cell: float) -> None:
    """On a connected cluster: refuse a request of CPUs and GPUs no node can meet (a cell runs on
    one node; Tune would wait for it forever)."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if any(n.get("CPU", 0) >= cpus_per_cell and n.get("GPU", 0) >= gpus_per_cell for n in nodes):
        return
    if gpus_per_cell > 0 and max((n.get("GPU", 0) for n in nodes), default=0) < gpus_per_cell:
        raise AblateError(f"each cell asks for {gpus_per_cell:g} GPU(s), but the largest node of the cluster has "
                          f"{max((n.get('GPU', 0) for n in nodes), default=0):g}.", field="resources.gpus_per_cell",
                          fix="lower resources.gpus_per_cell (0 runs on CPUs) or add GPU nodes to the cluster.")
    largest = max((n.get("CPU", 0) for n in nodes if n.get("GPU", 0) >= gpus_per_cell), default=0)
    raise AblateError(f"each cell asks for {cpus_per_cell:g} CPU(s)" + (f" and {gpus_per_cell:g} GPU(s)" if gpus_per_cell
                      else "") + ", but no node of the cluster has them (" + (f"the most CPUs on a node with "
                      f"{gpus_per_cell:g} GPU(s): {largest:g}" if gpus_per_cell else f"the largest node has {largest:g}")
                      + ").", field="resources.cpus_per_cell",
                      fix="lower resources.cpus_per_cell, or add larger nodes to the cluster.")


def check_storage(storage: str, timeout: float = 20) -> None:
    """Fail in seconds, before anything starts, on a storage location Tune could not write."""
    import threading

    from ablate.checkpoint import storage_filesystem
    from ablate.files import check_output_folder

    if "://" not in storage:
        check_output_folder(storage, "resources.storage_path")
        return
    failure: list[BaseException] = []

    def probe() -> None:
        try:
            filesystem, root = storage_filesystem(storage)
            filesystem.get_file_info(root)
        except Exception as exc:  # pyarrow raises several kinds (unknown scheme, credentials, network)
            failure.append(exc)

    thread = threading.Thread(target=probe, name="ablate-storage-check", daemon=True)
    thread.start()
    thread.join(timeout)
    fix = ("give a folder every node mounts, or a URI pyarrow reads: s3://bucket/path (credentials from the AWS_* "
           "variables; add ?endpoint_override=HOST:PORT&scheme=http for an S3-compatible server), gs://bucket/path.")
    if thread.is_alive():
        raise AblateError(f"the storage at '{storage}' did not answer within {timeout:g} s.",
                          field="resources.storage_path", fix=fix)
    if failure:
        reason = first_line(failure[0])
        raise AblateError(f"cannot use the storage '{storage}' ({reason}).", field="resources.storage_path", fix=fix)


def check_cluster_storage(tracking_uri: str, storage: str, storage_is_default: bool) -> None:
    """On a connected cluster of more than one node: refuse a tracking store or a checkpoint
    storage that only this machine can reach (the sweep would fail, or lose work, on the others)."""
    from urllib.parse import urlparse

    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) <= 1:
        return
    tracking = urlparse(tracking_uri)
    if tracking.scheme in ("", "file", "sqlite"):
        raise AblateError(f"the Ray cluster has {len(nodes)} nodes, but the tracking store {tracking_uri} is a file "
                          "on this machine: the other nodes cannot write to it (and SQLite is not made for writers "
                          "on several machines).", field="--tracking-uri",
                          fix="run an MLflow tracking server every node reaches (mlflow server --backend-store-uri "
                              "postgresql://... --artifacts-destination s3://...; see the README, 'From a laptop to "
                              "a cluster') and give --tracking-uri http://HOST:5000.")
    remote = [node["NodeManagerAddress"] for node in nodes if not _is_loopback(node["NodeManagerAddress"])]
    if _is_loopback(tracking.hostname or "") and remote:
        raise AblateError(f"the tracking server {tracking_uri} is on this machine's loopback address, which the "
                          f"nodes at {', '.join(sorted(set(remote)))} cannot reach.", field="--tracking-uri",
                          fix="give the tracking server's address on the cluster's network (and start it with "
                              "--host on that address).")
    if storage_is_default:
        raise AblateError(f"the Ray cluster has {len(nodes)} nodes, but checkpoints would go to {storage} on this "
                          "machine only: a cell retried on another node could not resume from them.",
                          field="resources.storage_path",
                          fix="give --storage-path s3://bucket/path (or another URI every node reaches), or a "
                              "folder every node mounts at the same path.")
    if "://" not in storage:
        _check_every_node_sees(storage, nodes)


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_every_node_sees(folder: str, nodes: list[dict], timeout: float = 60) -> None:
    """A storage folder must be one every node mounts: a marker written here is looked for by a
    task pinned to each node."""
    import uuid
    from pathlib import Path

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = Path(folder)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f".ablate-reach-{uuid.uuid4().hex}"
    marker.write_text("ablate checks that every node sees this folder")

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        import os

        return os.path.exists(path)

    try:
        checks = {node["NodeID"]: sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                  .remote(str(marker)) for node in nodes}
        blind = []
        for node in nodes:
            try:
                if not ray.get(checks[node["NodeID"]], timeout=timeout):
                    blind.append(node)
            except Exception:  # a node that cannot run the check cannot use the folder either
                blind.append(node)
    finally:
        marker.unlink(missing_ok=True)
        if created:
            try:
                root.rmdir()
            except OSError:
                pass
    if blind:
        names = ", ".join(f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})" for n in blind)
        raise AblateError(f"the storage folder {folder} is not visible from the node(s) {names}.",
                          field="resources.storage_path",
                          fix="mount it at the same path on every node, or give a URI every node reaches "
                              "(--storage-path s3://bucket/path).")
