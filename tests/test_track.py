"""The MLflow edge: one retry policy for reads and writes, and no metric step logged twice."""

import pytest
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

from ablate.track import CellTracker, RetryPolicy, Store, StoreUnavailable, is_transient
from tests.conftest import wait_until


def test_transient_errors_are_told_by_type():
    assert is_transient(MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE))
    assert is_transient(requests.exceptions.ConnectionError("refused"))
    wrapped = MlflowException("store failed")
    wrapped.__cause__ = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("locked"))
    assert is_transient(wrapped)
    assert not is_transient(MlflowException("bad key", error_code=INVALID_PARAMETER_VALUE))
    assert not is_transient(ValueError("a bug"))


def test_sqlite_errors_are_transient_when_the_file_is_busy_not_when_the_schema_is_wrong(tmp_path):
    """SQLite raises OperationalError for both; retrying a broken schema would only delay the error."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0.05})
    with engine.begin() as db:
        db.exec_driver_sql("CREATE TABLE t (x)")
    with pytest.raises(sqlalchemy.exc.OperationalError) as schema_error, engine.begin() as db:
        db.exec_driver_sql("CREATE TABLE t (x)")
    assert not is_transient(schema_error.value)
    holder = engine.connect()
    holder.exec_driver_sql("BEGIN EXCLUSIVE")
    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0.05})
    with pytest.raises(sqlalchemy.exc.OperationalError) as busy, other.begin() as db:
        db.exec_driver_sql("INSERT INTO t VALUES (1)")
    holder.close()
    assert is_transient(busy.value)


CREATE_STORE = "import sys; from ablate.track import mlflow_client; mlflow_client(sys.argv[1]).search_experiments()"


def _tables(path) -> set[str]:
    """The tables of an SQLite file being written by another process (none while it is locked)."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.05)) as db:
            return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return set()


def test_a_sqlite_store_killed_while_being_created_leaves_no_file_and_the_next_open_builds_it(tmp_path):
    """MLflow migrates a new SQLite file in steps that are not one transaction; a creator killed
    among them must not leave a file that no later open can migrate."""
    import os
    import signal
    import subprocess
    import sys

    db = tmp_path / "mlflow.db"
    creator = subprocess.Popen([sys.executable, "-c", CREATE_STORE, f"sqlite:///{db}"], stderr=subprocess.DEVNULL)
    # Killed once the migrations have begun in its private file (alembic's version table exists:
    # the initial tables are made, the upgrade steps are running), and not before.
    # A generous deadline: on a loaded machine importing MLflow alone takes tens of seconds.
    building = wait_until(lambda: [p for p in tmp_path.glob(".mlflow.db.*.new") if "alembic_version" in _tables(p)]
                          or creator.poll() is not None, 240, "the creator to start migrating its private file",
                          every=0.02)
    assert building is not True, f"the creator ended (exit {creator.returncode}) before it was seen migrating"
    os.kill(creator.pid, signal.SIGKILL)
    creator.wait()
    assert "alembic_version" in _tables(building[0]) and "experiments" in _tables(building[0]), "killed mid-build"
    assert not db.exists(), "a killed creator left a half-built store in place"
    assert building[0].exists()

    store = Store(f"sqlite:///{db}")
    assert store.find_experiment("e") is None
    assert store.ensure_experiment("e") and store.find_experiment("e")
    assert not building[0].exists(), "the dead creator's private file is cleaned up"


def test_two_processes_creating_one_sqlite_store_at_once_both_open_it(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "mlflow.db"
    creators = [subprocess.Popen([sys.executable, "-c", CREATE_STORE, f"sqlite:///{db}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for creator in creators:
        output = creator.communicate(timeout=120)[0]
        assert creator.returncode == 0, output[-2000:]
    assert Store(f"sqlite:///{db}").experiment_names() == ["Default"]
    assert not list(tmp_path.glob(".mlflow.db.*"))


def test_the_policy_retries_transient_errors_within_its_window_and_raises_others_at_once():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise requests.exceptions.ConnectionError("server restarting")
        return "ok"

    assert RetryPolicy(window_seconds=5, first_delay=0.01).call(flaky) == "ok" and len(calls) == 3
    with pytest.raises(ValueError):
        RetryPolicy(window_seconds=5).call(lambda: (_ for _ in ()).throw(ValueError("a bug")))
    with pytest.raises(StoreUnavailable, match=r"retry window \(0.05 s\).*ConnectionError: down") as raised:
        RetryPolicy(window_seconds=0.05, first_delay=0.01).call(
            lambda: (_ for _ in ()).throw(requests.exceptions.ConnectionError("down")))
    assert isinstance(raised.value.__cause__, requests.exceptions.ConnectionError)
    assert raised.value.field == "tracking.retry_seconds" and "run the same command again" in raised.value.fix


def test_a_refusal_by_the_server_is_never_retried_and_says_which_variables_to_set(monkeypatch):
    """HTTP 401 (credentials) and 403 (permission), as MLflow's REST client raises them: not an
    outage to wait out for retry_seconds, but one paragraph with the fix, at the first refusal."""
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

    from ablate.track import AccessRefused, refused_status

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    unauthenticated = MlflowException("API request to endpoint /api/2.0/mlflow/runs/create failed with error code "
                                      "401 != 200. Response body: 'You are not authenticated.'",
                                      error_code=UNAUTHENTICATED)
    denied = MlflowException("Permission denied", error_code=PERMISSION_DENIED)
    text_only = MlflowException("API request to endpoint /x failed with error code 403 != 200. Response body: 'no'")
    for error, status in ((unauthenticated, 401), (denied, 403), (text_only, 403)):
        assert refused_status(error) == status and not is_transient(error)
        calls: list[int] = []

        def refused(error=error, calls=calls):
            calls.append(1)
            raise error

        with pytest.raises(AccessRefused) as raised:
            RetryPolicy(window_seconds=60, first_delay=0.01).call(refused)
        assert len(calls) == 1 and raised.value.status == status
        assert "user 'bob'" in str(raised.value) and "MLFLOW_TRACKING_PASSWORD" in str(raised.value)
    assert refused_status(MlflowException("API request failed with error code 503 != 200")) is None


def test_a_reattached_run_logs_no_step_twice(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    store = Store(uri)
    experiment_id = store.ensure_experiment("e")
    first = CellTracker.start(uri, experiment_id, "parent", cell_id="c1", name="c1", sweep="s", axis_values={"seed": 0},
                              settings={"seed": 0}, data_fingerprint="f")
    first.log_series({"train_loss": [(10, 2.0), (20, 1.5)]})
    first.log_metrics({"def/rougeL": 40.0})
    # A resumed cell: a new tracker on the same run logs the whole history and the scores again.
    again = CellTracker(uri, first.run_id)
    again.log_series({"train_loss": [(10, 2.0), (20, 1.5), (30, 1.2)]})
    again.log_metrics({"def/rougeL": 40.0, "def/exact_match": 12.0})
    history = store.client.get_metric_history(first.run_id, "train_loss")
    assert [m.step for m in history] == [10, 20, 30]
    assert len(store.client.get_metric_history(first.run_id, "def/rougeL")) == 1
    assert store.client.get_run(first.run_id).data.metrics["def/exact_match"] == 12.0


def test_cells_logging_the_same_dataset_at_once_both_link_it(tmp_path):
    """Concurrent cells register the same test set; the one that loses the insert race links it."""
    import threading

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    experiment_id = Store(uri).ensure_experiment("e")
    trackers = [CellTracker.start(uri, experiment_id, "parent", cell_id=f"c{i}", name=f"c{i}", sweep="s",
                                  axis_values={"seed": i}, settings={"seed": i}, data_fingerprint="f") for i in range(4)]
    errors = []

    def log(tracker):
        try:
            tracker.log_dataset("test (12 tasks)", "0123456789abcdef", "synthetic", 120, "evaluation")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(t,)) for t in trackers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    client = Store(uri).client
    for tracker in trackers:
        inputs = client.get_run(tracker.run_id).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["test (12 tasks)"]


def test_a_cell_shorter_than_the_sampling_interval_still_logs_system_metrics(tmp_path):
    """MLflow's monitor logs a sample after each full 10 s interval; a cell's last sample is
    logged as it ends, so a 1-second cell has its system/ metrics too."""
    import time

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    store = Store(uri)
    experiment_id = store.ensure_experiment("e")
    tracker = CellTracker.start(uri, experiment_id, "parent", cell_id="c1", name="c1", sweep="s",
                                axis_values={"seed": 0}, settings={"seed": 0}, data_fingerprint="f")
    began = time.perf_counter()
    with tracker.system_metrics():
        time.sleep(0.5)
    assert time.perf_counter() - began < 10
    metrics = store.client.get_run(tracker.run_id).data.metrics
    assert any(key.startswith("system/cpu_utilization") for key in metrics), sorted(metrics)
    assert any(key.startswith("system/system_memory_usage") for key in metrics), sorted(metrics)


@pytest.mark.slow
def test_processes_opening_an_empty_database_store_at_once_all_open_it(tmp_path):
    """The first client of an empty PostgreSQL store creates its tables; several at once race
    (a sweep's status prefetch and its driver did), and every one must open the store."""
    import multiprocessing

    from tests.services import start_postgres

    (tmp_path / "services").mkdir()
    service, uri = start_postgres(tmp_path / "services")
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(3) as pool:
            opened = pool.map(_open_and_create, [(uri, f"e{i}") for i in range(3)])
        assert sorted(opened) == ["e0", "e1", "e2"]
    finally:
        service.stop()


def _open_and_create(job: tuple[str, str]) -> str:
    from ablate.track.client import mlflow_client

    uri, name = job
    client = mlflow_client(uri)
    client.create_experiment(name)
    return client.get_experiment_by_name(name).name
