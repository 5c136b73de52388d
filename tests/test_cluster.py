"""From one machine to a cluster: a sweep on two Ray nodes (token authentication) with an MLflow
server on PostgreSQL and artifacts in an S3 bucket, a worker node killed mid-cell, and what must
be refused on more than one node. The scenario (tests/cluster_scenario.py) runs in a network
namespace whose only interface is loopback, so the cluster listens on 127.0.0.1 alone."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.fail("the cluster test runs as root with unshare and ip (util-linux, iproute2), as .ci/run does")
    folder = tmp_path_factory.mktemp("cluster")
    command = f"ip link set lo up && exec {sys.executable} -m tests.cluster_scenario {folder}"
    done = subprocess.run(["unshare", "--net", "--fork", "sh", "-c", command], cwd=REPO, capture_output=True,
                          text=True, timeout=1500, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    found = folder / "facts.json"
    assert found.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(found.read_text())
    assert "error" not in result, json.dumps(result, indent=1)[-6000:]
    return result


def test_two_nodes_run_the_sweep_and_a_killed_node_s_cell_resumes_from_shared_storage(facts):
    assert facts["sweep"]["code"] == 0, facts["sweep"]["stdout"]
    nodes = facts["nodes"]
    assert facts["ran_on_before_kill"] == sorted([nodes["head"], nodes["worker"]]), "one cell on each node"
    cells = facts["cells"]
    assert len(cells) == 2 and all(c["status"] == "FINISHED" for c in cells)
    resumed = [c for c in cells if c["resumed_from_step"] >= 20]
    assert len(resumed) == 1 and resumed[0]["node"] == nodes["head"], \
        "the worker node's cell finished on the head from its checkpoint in the bucket"
    assert "worker lost; retrying" in facts["sweep"]["stdout"]
    assert all(c["rougeL"] is not None for c in cells)


def test_every_run_is_finished_in_postgresql_and_artifacts_are_in_the_bucket(facts):
    rows = facts["postgres_rows"]
    assert sorted(rows) == [["cell", "FINISHED"], ["cell", "FINISHED"], ["parent", "FINISHED"]]
    keys = facts["artifact_keys"]
    for cell in facts["cells"]:
        assert any(k.endswith(f"{cell['run_id']}/artifacts/predictions/def-pos2.jsonl") for k in keys)
    assert any(k.endswith("artifacts/report/report.json") for k in keys), "the report reached the bucket"
    assert any(k.endswith("/state.pt") for k in facts["checkpoint_keys"]), "checkpoints are in the shared storage"
    assert facts["left_running"] == []


def test_what_cannot_work_on_two_nodes_is_refused_before_anything_starts(facts):
    sqlite = facts["sqlite_store"]
    assert sqlite["code"] == 2 and "--tracking-uri" in sqlite["stderr"] and "is a file on this machine" in sqlite["stderr"]
    storage = facts["default_storage"]
    assert storage["code"] == 2 and "resources.storage_path" in storage["stderr"] and "--storage-path" in storage["stderr"]
    token = facts["without_token"]
    assert token["code"] == 2 and "token authentication" in token["stderr"] and "RAY_AUTH_TOKEN" in token["stderr"]
    for refused in (sqlite, storage, token):
        assert "Traceback" not in refused["stderr"].split("ablate: error:")[-1]
    assert facts["runs_after_refusals"] == 0, "a refused sweep leaves no run behind"
