"""Reliability with real processes: kill -9, lost workers, diverging cells, a tracking server outage,
Ctrl-C, and two sweeps at once. Every check ends on the MLflow store."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, ablate_cli, command_line, descendants, kill_tree, start_cli, wait_until

pytestmark = pytest.mark.slow


def write_spec(folder: Path, name: str = "rel", steps: int = 120, axes: dict | None = None, **fields) -> Path:
    """The smoke spec, loaded and changed as data: `steps`, a checkpoint every 20 steps, other axes
    and top-level fields (e.g. seeds=[0], resources={...})."""
    spec = yaml.safe_load((REPO / "sweeps" / "smoke.yaml").read_text())
    spec["name"] = name
    spec["train"].update(steps=steps, checkpoint_every=20)
    if axes is not None:
        spec["axes"] = axes
    spec.update(fields)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def checkpoints_by_trial(folder: Path, name: str) -> dict[str, list[int]]:
    """The steps of the checkpoints written so far, by trial folder (one trial per cell)."""
    steps: dict[str, list[int]] = {}
    for marker in (folder / "ablate_runs" / name / "ray").glob("*/*/checkpoint_*/cell.json"):
        try:
            steps.setdefault(marker.parent.parent.name, []).append(json.loads(marker.read_text())["step"])
        except (OSError, ValueError):
            pass
    return steps


def _checkpoint_markers(folder: Path, name: str) -> set[Path]:
    return set((folder / "ablate_runs" / name / "ray").glob("*/*/checkpoint_*/cell.json"))


def checkpoint_steps(folder: Path, name: str) -> list[int]:
    return [step for steps in checkpoints_by_trial(folder, name).values() for step in steps]


def cells_checkpointed_at(folder: Path, name: str, step: int) -> int:
    return sum(1 for steps in checkpoints_by_trial(folder, name).values() if max(steps) >= step)


def wait_for(condition, timeout: float = 180):
    return wait_until(condition, timeout, "a condition of the test")


def runs(folder: Path, experiment: str, uri: str | None = None):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or f"sqlite:///{folder / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    cells = client.search_runs([found.experiment_id], "tags.`ablate.role` = 'cell'", max_results=1000)
    parents = client.search_runs([found.experiment_id], "tags.`ablate.role` = 'parent'")
    return cells, parents


def finished_by_cell(cell_runs) -> dict[str, list]:
    by_cell: dict[str, list] = {}
    for run in cell_runs:
        if run.info.status == "FINISHED":
            by_cell.setdefault(run.data.tags["ablate.cell_id"], []).append(run)
    return by_cell


def assert_complete(folder: Path, name: str, cells: int = 4, uri: str | None = None):
    cell_runs, parents = runs(folder, name, uri)
    assert len(parents) == 1
    finished = finished_by_cell(cell_runs)
    assert len(finished) == cells and all(len(v) == 1 for v in finished.values()), \
        {k: len(v) for k, v in finished.items()}
    assert not [r for r in cell_runs if r.info.status == "RUNNING"], "no run left RUNNING"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or f"sqlite:///{folder / 'mlflow.db'}")
    for run in cell_runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert len(steps) == len(set(steps)), f"a metric step logged twice in run {run.info.run_id}: {steps}"
    return {k: v[0] for k, v in finished.items()}


def kill_driver(process) -> None:
    """kill -9 the `ablate sweep` process; Ray's own processes follow it (the leftovers are reaped by PID)."""
    below = descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    kill_tree(process, also=below)


def _listening_addresses(pids: set[int]) -> list[str]:
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    return [line.split()[3] for line in lines if any(f"pid={pid}," in line for pid in pids)]


def recorded_processes(folder: Path, name: str) -> dict[int, float]:
    try:
        return {int(k): v for k, v in json.loads((folder / "ablate_runs" / name / "processes.json").read_text()).items()}
    except (OSError, ValueError):
        return {}


def alive(recorded: dict[int, float]) -> list[int]:
    from ablate.processes import alive_processes

    return [process.pid for process in alive_processes(recorded)]


def test_kill_9_of_the_driver_then_rerun_reaps_its_processes_and_resumes_from_checkpoints(tmp_path):
    spec = write_spec(tmp_path)
    sweep = start_cli("sweep", str(spec), cwd=tmp_path)
    try:
        wait_for(lambda: any(s >= 20 for s in checkpoint_steps(tmp_path, "rel")))
        listening = _listening_addresses({sweep.pid, *descendants(sweep.pid)})
        assert listening, "Ray's services are listening"
        outside = [a for a in listening if not a.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:").startswith("127.")]
        assert not outside, f"the local Ray runtime serves on 127.0.0.1 only: {outside}"
        first = recorded_processes(tmp_path, "rel")
        assert len(first) >= 3, "the sweep records the processes of its Ray runtime"
        os.kill(sweep.pid, signal.SIGKILL)  # the driver only: what it started is left to the next sweep
        sweep.wait(timeout=30)
    except BaseException:
        kill_driver(sweep)
        raise
    cell_runs, _ = runs(tmp_path, "rel")
    assert any(r.info.status == "RUNNING" for r in cell_runs), "the crash left runs RUNNING"
    # Ray's own processes die with the driver, some at once, some seconds later: which of them are
    # still alive when the rerun starts is a race. A stand-in that certainly outlived the driver
    # (as a busy worker may) is added to the killed sweep's record, so the reaping is always seen.
    record = tmp_path / "ablate_runs" / "rel" / "processes.json"
    assert record.is_file(), "the killed sweep left its record of processes"
    stand_in = subprocess.Popen(["sleep", "600"], start_new_session=True)
    import psutil

    recorded = json.loads(record.read_text())
    recorded[str(stand_in.pid)] = psutil.Process(stand_in.pid).create_time()
    record.write_text(json.dumps(recorded))

    again = start_cli("sweep", str(spec), cwd=tmp_path)
    second: dict[int, float] = {}
    try:
        while again.poll() is None:
            second.update(recorded_processes(tmp_path, "rel"))
            time.sleep(0.2)
        output = again.stdout.read()
    finally:
        kill_tree(again, also=[*alive(first), *alive(second)])
        if stand_in.poll() is None:
            stand_in.kill()
    assert again.returncode == 0, output[-3000:]
    assert stand_in.wait(timeout=30) == -signal.SIGTERM, "the rerun stopped the process left running, by PID"
    assert not alive(first), "the rerun stopped what the killed sweep left running"
    assert "process(es) left running by an interrupted sweep" in output
    assert second and not alive(second), "a sweep that ends leaves none of its processes behind"
    assert not (tmp_path / "ablate_runs" / "rel" / "processes.json").exists()
    assert "KILLED" in output
    finished = assert_complete(tmp_path, "rel")
    resumed = [r for r in finished.values() if int(r.data.tags.get("ablate.resumed_from_step", "0")) >= 20]
    assert resumed, "an interrupted cell continued from its checkpoint"
    assert not [r for r in runs(tmp_path, "rel")[0] if r.info.status not in ("FINISHED", "KILLED")]


def test_killed_5_times_at_points_of_its_progress_ends_with_the_uninterrupted_results(tmp_path):
    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    reference_dir.mkdir()
    crashed_dir.mkdir()
    reference = ablate_cli("sweep", str(write_spec(reference_dir)), cwd=reference_dir)
    assert reference.returncode == 0, reference.stdout[-3000:]
    expected = assert_complete(reference_dir, "rel")

    spec = write_spec(crashed_dir)
    # Five kills at points of the sweep's own progress, each waited for with a deadline: Ray just
    # started (its processes recorded), then after 1, 1, 2 and 1 new checkpoints (mid-cell).
    kill_points = [("Ray started", None), ("1 new checkpoint", 1), ("1 new checkpoint", 1),
                   ("2 new checkpoints", 2), ("1 new checkpoint", 1)]
    interrupted = 0
    for what, checkpoints in kill_points:
        before_markers = _checkpoint_markers(crashed_dir, "rel")
        before_processes = set(recorded_processes(crashed_dir, "rel").items())
        sweep = start_cli("sweep", str(spec), cwd=crashed_dir)

        def reached(sweep=sweep, checkpoints=checkpoints, before_markers=before_markers,
                    before_processes=before_processes):
            if sweep.poll() is not None:
                return "ended"
            if checkpoints is None:
                return bool(set(recorded_processes(crashed_dir, "rel").items()) - before_processes)
            return len(_checkpoint_markers(crashed_dir, "rel") - before_markers) >= checkpoints

        reached_point = wait_until(reached, 300, f"the sweep to reach the kill point '{what}'", every=0.1)
        if reached_point is True:
            interrupted += 1
            kill_driver(sweep)
    assert interrupted >= 4, f"only {interrupted} of the 5 kills hit a running sweep"
    final = ablate_cli("sweep", str(spec), cwd=crashed_dir)
    assert final.returncode == 0, final.stdout[-3000:]
    got = assert_complete(crashed_dir, "rel")
    assert set(got) == set(expected), "the same cell ids"
    for cell_id, run in expected.items():
        for metric in ("exact_match", "rougeL"):
            assert got[cell_id].data.metrics[metric] == run.data.metrics[metric], cell_id


def _worker_pids(driver_pid: int) -> list[int]:
    return [p for p in descendants(driver_pid) if command_line(p).startswith("ray::ImplicitFunc")]


@pytest.mark.parametrize("max_failures", [1, 0])
def test_killed_worker_is_retried_from_its_checkpoint_or_given_up(tmp_path, max_failures):
    spec = write_spec(tmp_path, steps=160, axes={"instances_per_task": [8]},
                      resources={"max_concurrent": 2, "max_failures": max_failures})
    sweep = start_cli("sweep", str(spec), cwd=tmp_path)
    try:
        # both cells (one worker each) past their first real checkpoint, whichever worker dies
        wait_for(lambda: cells_checkpointed_at(tmp_path, "rel", 20) >= 2)
        victim = wait_for(lambda: _worker_pids(sweep.pid))[0]
        os.kill(victim, signal.SIGKILL)
        output, _ = sweep.communicate(timeout=400)
    finally:
        kill_tree(sweep)
    cell_runs, _ = runs(tmp_path, "rel")
    finished = finished_by_cell(cell_runs)
    assert not [r for r in cell_runs if r.info.status == "RUNNING"]
    if max_failures:
        assert sweep.returncode == 0, output[-3000:]
        assert len(finished) == 2 and all(len(v) == 1 for v in finished.values())
        assert any(int(v[0].data.tags.get("ablate.resumed_from_step", "0")) >= 20 for v in finished.values())
        assert "retrying" in output
    else:
        assert sweep.returncode == 1, output[-3000:]
        assert len(finished) == 1, "the other cell went on"
        assert "1 failed" in output and "FAILED  " in output and "log:" in output
        failed = [r for r in cell_runs if r.info.status == "FAILED"]
        assert len(failed) == 1 and failed[0].data.tags.get("ablate.error")


def test_a_diverging_cell_fails_as_such_and_the_others_go_on(tmp_path):
    spec = write_spec(tmp_path, steps=40, axes={"train.learning_rate": [1.0e-3, 1.0e+12]}, seeds=[0])
    result = ablate_cli("sweep", str(spec), cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "FAILED  learning_rate=1000000000000.0 seed=0" in result.stdout
    assert "DivergedError: training diverged: loss is nan" in result.stdout
    assert "retrying" not in result.stdout, "a cell that raises fails once; only a lost worker is retried"
    cell_runs, _ = runs(tmp_path, "rel")
    assert len(cell_runs) == 2, "one run per cell: the failed cell was not trained a second time"
    statuses = {r.data.params["train.learning_rate"]: r for r in cell_runs}
    assert statuses["0.001"].info.status == "FINISHED"
    failed = statuses["1000000000000.0"]
    assert failed.info.status == "FAILED" and failed.data.tags["ablate.diverged"] == "true"
    assert "DivergedError" in failed.data.tags["ablate.error"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _start_mlflow_server(folder: Path, port: int):
    mlflow = str(Path(sys.executable).parent / "mlflow")
    server = subprocess.Popen([mlflow, "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
                               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import urllib.request

    def healthy():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=180)  # its workers start slowly on a loaded machine
    except BaseException:
        kill_tree(server)  # a server that never answered is not left running
        raise
    return server


def test_tracking_server_outage_during_a_sweep_loses_nothing(tmp_path):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_mlflow_server(tmp_path, port)
    sweep = None
    try:
        spec = write_spec(tmp_path, steps=120)
        sweep = start_cli("sweep", str(spec), "--tracking-uri", uri, cwd=tmp_path)
        wait_for(lambda: any(s >= 20 for s in checkpoint_steps(tmp_path, "rel")))
        markers = _checkpoint_markers(tmp_path, "rel")
        kill_tree(server)  # the server goes away in the middle of the sweep...
        # ...for as long as the cells take to train on to a new checkpoint without it...
        wait_for(lambda: not _listening(port) and _checkpoint_markers(tmp_path, "rel") - markers)
        server = _start_mlflow_server(tmp_path, port)  # ...and comes back
        output, _ = sweep.communicate(timeout=500)
        assert sweep.returncode == 0, output[-3000:]
        assert_complete(tmp_path, "rel", uri=uri)
    finally:
        if sweep is not None:
            kill_tree(sweep)
        kill_tree(server)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    spec = write_spec(tmp_path, steps=400)
    sweep = start_cli("sweep", str(spec), cwd=tmp_path)
    try:
        wait_for(lambda: any(s >= 20 for s in checkpoint_steps(tmp_path, "rel")))
        below = descendants(sweep.pid)
        sweep.send_signal(signal.SIGINT)
        output, _ = sweep.communicate(timeout=120)
    finally:
        kill_tree(sweep)
    assert sweep.returncode == 130, output[-3000:]
    assert "Resume with: ablate sweep" in output
    wait_for(lambda: not [p for p in below if command_line(p).startswith("ray::ImplicitFunc")], timeout=30)
    cell_runs, _ = runs(tmp_path, "rel")
    assert cell_runs and not [r for r in cell_runs if r.info.status == "RUNNING"]
    assert any(r.info.status == "KILLED" for r in cell_runs)


def test_a_second_sweep_on_the_same_spec_refuses_while_the_first_runs(tmp_path):
    spec = write_spec(tmp_path, steps=100)
    first = start_cli("sweep", str(spec), cwd=tmp_path)
    try:
        wait_for(lambda: (tmp_path / "ablate_runs" / "rel" / "plan.json").exists())
        second = ablate_cli("sweep", str(spec), cwd=tmp_path)
        assert second.returncode == 2
        assert "another `ablate sweep`" in second.stderr and "Traceback" not in second.stderr
        output, _ = first.communicate(timeout=400)
        assert first.returncode == 0, output[-3000:]
    finally:
        kill_tree(first)
    assert_complete(tmp_path, "rel")
