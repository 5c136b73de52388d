"""The Ray runtime a sweep runs on: a Ray cluster at an address, or a local runtime of our own."""

from __future__ import annotations

import os
from contextlib import contextmanager

from ablate.errors import AblateError
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
    import ray

    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # address="local": always a fresh runtime of our own, without the dashboard.
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        cause = exc.__cause__ or exc
        raise AblateError(f"cannot connect to the Ray cluster at '{address}' ({str(cause).splitlines()[0][:300]}).",
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


def check_cluster_gpus(gpus_per_cell: float) -> None:
    """On a connected cluster: refuse a GPU request no node can meet (Tune would wait forever)."""
    import ray

    if gpus_per_cell <= 0:
        return
    per_node = [node["Resources"].get("GPU", 0) for node in ray.nodes() if node.get("Alive")]
    if not per_node or max(per_node) < gpus_per_cell:
        raise AblateError(f"each cell asks for {gpus_per_cell} GPU(s), but the largest node of the cluster has "
                          f"{max(per_node, default=0):g}.", field="resources.gpus_per_cell",
                          fix="lower resources.gpus_per_cell (0 runs on CPUs) or add GPU nodes to the cluster.")
