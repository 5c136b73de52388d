import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fixture_tasks() -> Path:
    """Hand-written SuperNI tasks with edge cases (tests/fixtures/tasks)."""
    return FIXTURES / "tasks"


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    from ablate.data.synthetic import write_suite

    return write_suite(tmp_path_factory.mktemp("synthetic"), seed=0)


def ablate_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run the real `ablate` entry point of this environment."""
    exe = shutil.which("ablate", path=str(Path(sys.executable).parent)) or "ablate"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """The smoke sweep run once through the real CLI (real Ray, real MLflow SQLite store)."""
    workdir = tmp_path_factory.mktemp("smoke")
    result = ablate_cli("sweep", str(REPO / "sweeps" / "smoke.yaml"), cwd=workdir)
    return workdir, result


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), for cleanup and for finding Ray workers."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def wait_until(condition, timeout: float, what: str, every: float = 0.3):
    """The first true value of `condition()`, polled every `every` s; fails after `timeout` s."""
    import time

    began = time.time()
    while time.time() - began < timeout:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def start_cli(*args: str, cwd: Path):
    """Start `ablate` in the background (own process group); returns the Popen."""
    exe = shutil.which("ablate", path=str(Path(sys.executable).parent)) or "ablate"
    return subprocess.Popen([exe, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)


def kill_tree(process, also: list[int] = ()) -> None:
    """Kill a started process, everything it started, and `also` (PIDs seen below it earlier), by PID."""
    import signal

    for pid in [process.pid, *descendants(process.pid), *also]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture
def chrome(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def planned_cells(tmp_path: Path, spec: dict):
    """The cells of a spec given as a dict (written to a YAML file in tmp_path, loaded as a user's is)."""
    import yaml

    from ablate.data.sources import source_fingerprint
    from ablate.plan import expand_grid
    from ablate.spec import load_spec

    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    loaded = load_spec(path, [], tmp_path)
    return expand_grid(loaded, source_fingerprint(loaded.data.source, loaded.data.synthetic_seed))


def cell_tracker(tmp_path: Path, cell, experiment: str = "cells"):
    """A real child run for `cell` in a fresh SQLite store in tmp_path: (tracker, store)."""
    from ablate.track.cell_run import CellTracker
    from ablate.track.store import Store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = Store(uri)
    experiment_id = store.ensure_experiment(experiment)
    tracker = CellTracker.start(uri, experiment_id, "parent", cell_id=cell.id, name=cell.name, sweep=experiment,
                                axis_values={}, settings=cell.settings.model_dump(mode="json"),
                                data_fingerprint=cell.settings.data_fingerprint)
    return tracker, store
