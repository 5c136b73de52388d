"""One sweep per experiment per store: the store arbitrates (an experiment name is created once),
a second sweep from another folder refuses naming the running one, and a lock left by a killed
sweep does not block for long."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ablate.errors import AblateError
from ablate.track import Store
from ablate.track.store_lock import BEAT, HOLDER, HOST, PID, PID_NAMESPACE, STALE_SECONDS, StoreLock, _pid_namespace, \
    lock_name
from tests.conftest import REPO, ablate_cli, start_cli


def _locks(store: Store, experiment: str) -> list:
    return [e for e in store.client.search_experiments() if e.name == lock_name(experiment)]


def test_a_second_sweep_of_the_experiment_is_refused_naming_the_first(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with StoreLock(store, "clusters", tmp_path / "a"):
        assert len(_locks(store, "clusters")) == 1
        with pytest.raises(AblateError) as refused:
            with StoreLock(Store(store.uri), "clusters", tmp_path / "b"):
                pass
        message = str(refused.value)
        assert "already running" in message and str((tmp_path / "a").resolve()) in message
        assert str(os.getpid()) in message and socket.gethostname() in message
        with StoreLock(store, "other", tmp_path / "b"):  # another experiment is another lock
            pass
    assert not _locks(store, "clusters"), "released: the name is free and the lock hidden"
    with StoreLock(store, "clusters", tmp_path / "b"):
        pass


def test_a_lock_whose_holder_is_gone_is_taken_over(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # A sweep of another machine that stopped beating: stale after STALE_SECONDS.
    store.client.create_experiment(lock_name("e"), tags={HOST: "elsewhere", PID: "1", BEAT: f"{time.time():.3f}"})
    with pytest.raises(AblateError):
        with StoreLock(store, "e", tmp_path):
            pass
    later = time.time() + STALE_SECONDS + 1
    with StoreLock(store, "e", tmp_path, now=lambda: later):
        assert len(_locks(store, "e")) == 1
    # A process of this machine that no longer runs: taken over at once.
    dead = subprocess.Popen(["true"])
    dead.wait()
    here = {HOST: socket.gethostname(), PID_NAMESPACE: _pid_namespace(), BEAT: f"{time.time():.3f}"}
    store.client.create_experiment(lock_name("e"), tags={**here, PID: str(dead.pid)})
    with StoreLock(store, "e", tmp_path):
        pass
    # The same host name in another process namespace (a container): its PID says nothing here.
    store.client.create_experiment(lock_name("e"), tags={**here, PID: str(dead.pid), PID_NAMESPACE: "other"})
    with pytest.raises(AblateError, match="already running"):
        with StoreLock(store, "e", tmp_path):
            pass


def test_a_lock_this_sweep_created_though_the_answer_was_lost_is_its_own(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    lock = StoreLock(store, "e", tmp_path)
    store.client.create_experiment(lock_name("e"), tags={HOLDER: lock.holder, HOST: "elsewhere",
                                                          BEAT: f"{time.time():.3f}"})
    with lock:
        assert lock.lock_id is not None
    assert not _locks(store, "e")


@pytest.mark.slow
def test_the_same_sweep_started_twice_on_one_store_trains_each_cell_once(tmp_path):
    """Two folders, one SQLite store, started at once: one sweep runs, the other refuses before
    it writes anything; re-run later from the second folder, it finds every cell done."""
    from mlflow.tracking import MlflowClient

    store = tmp_path / "shared" / "mlflow.db"
    store.parent.mkdir()
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir(), second.mkdir()
    args = ["sweep", str(REPO / "sweeps" / "smoke.yaml"), "--tracking-uri", f"sqlite:///{store}",
            "--set", "train.steps=6", "--set", "eval.instances_per_task=3"]
    runs = [start_cli(*args, cwd=first), start_cli(*args, cwd=second)]
    outputs = []
    for run in runs:
        output, _ = run.communicate(timeout=900)
        outputs.append((run.returncode, output))
    codes = sorted(code for code, _ in outputs)
    assert codes == [0, 2], outputs
    refused = next(text for code, text in outputs if code == 2)
    assert "already running against this tracking store" in refused and "Traceback" not in refused
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("smoke")
    cells = client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")
    assert len(cells) == 4 and {r.info.status for r in cells} == {"FINISHED"}
    assert len({r.data.tags["ablate.cell_id"] for r in cells}) == 4, "each cell trained once"
    parents = client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'parent'")
    assert len(parents) == 1, "the refused sweep wrote no parent run"
    again = ablate_cli(*args, cwd=second)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")) == 4
