"""`ablate ui` serves the MLflow UI for the store on 127.0.0.1 only, and a person reading a sweep
there sees the runs (children nested under the parent), the report as the parent's description
and the curve as the parent's own chart (checked in headless Chromium)."""

import os
import re
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, ablate_cli, kill_tree, start_cli

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _outward_address() -> str | None:
    """This machine's non-loopback address, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _wait_for_page(port: int, timeout: float = 90) -> str:
    began = time.time()
    while time.time() - began < timeout:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the UI did not answer")


@pytest.fixture
def ui(smoke_sweep):
    workdir, _ = smoke_sweep
    port = _free_port()
    process = start_cli("ui", "--port", str(port), cwd=workdir)
    try:
        _wait_for_page(port)
        yield port, process
    finally:
        kill_tree(process)


def test_ui_serves_the_store_on_loopback_only_and_links_each_sweep(ui):
    port, process = ui
    outward = _outward_address()
    if outward is not None:
        with pytest.raises(OSError):
            socket.create_connection((outward, port), timeout=2).close()
    kill_tree(process)
    output = process.stdout.read()
    assert f"http://127.0.0.1:{port}" in output
    assert re.search(rf"smoke: http://127.0.0.1:{port}/#/experiments/\d+/runs\?workflowType=machine_learning", output)


def test_ui_refuses_a_taken_port_and_a_missing_store_and_writes_nothing(tmp_path, smoke_sweep):
    workdir, _ = smoke_sweep
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = ablate_cli("ui", "--port", str(taken.getsockname()[1]), cwd=workdir, timeout=60)
    assert busy.returncode == 2 and "cannot serve on 127.0.0.1" in busy.stderr and "--port" in busy.stderr
    empty = ablate_cli("ui", cwd=tmp_path, timeout=60)
    assert empty.returncode == 2 and "no MLflow store" in empty.stderr
    assert not list(tmp_path.iterdir()), "no mlflow.db created"


def _wait_text(driver, text: str, timeout: float = 60) -> str:
    began = time.time()
    while time.time() - began < timeout:
        body = driver.find_element("tag name", "body").text
        if text in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never appeared; the page shows: {body[:1500]!r}")


def _wait_element(driver, css: str, timeout: float = 60):
    began = time.time()
    while time.time() - began < timeout:
        found = driver.find_elements("css selector", css)
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no element {css!r}")


def _screenshot(driver, tmp_path: Path, name: str) -> None:
    """Kept in tmp; with ABLATE_DOCS_SCREENSHOTS=1 also written to docs/ui/ for the README."""
    for close in driver.find_elements("css selector", "[data-component-id*='assistant'] button[aria-label='Close'], "
                                                      "button[aria-label='Close assistant']"):
        close.click()
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    if os.environ.get("ABLATE_DOCS_SCREENSHOTS"):
        shutil.copy(tmp_path / f"{name}.png", REPO / "docs" / "ui" / f"{name}.png")


def test_the_mlflow_ui_shows_runs_nested_the_report_and_the_curve(ui, smoke_sweep, chrome, tmp_path):
    from mlflow.tracking import MlflowClient

    port, _ = ui
    workdir, _ = smoke_sweep
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    parent = client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'parent'")[0]
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    base = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}"
    chrome.set_window_size(1500, 1000)

    # The runs table: the parent, its children nested under it once expanded, the datasets.
    chrome.get(f"{base}/runs?workflowType=machine_learning")
    _wait_text(chrome, "ablate sweep smoke: varies instances_per_task")
    _wait_element(chrome, "button[data-component-id*='runnamecellrenderer']").click()  # the parent's expander
    body = _wait_text(chrome, "instances_per_task=8 seed=0")
    assert "instances_per_task=16 seed=1" in body
    rows = chrome.execute_script("return Array.from(document.querySelectorAll('[role=row]')).map(r => r.innerText)")
    names = [r for r in rows if "smoke" in r or "instances_per_task=" in r]
    assert names[0].count("instances_per_task=") == 0 and len(names) >= 5, "the parent first, its children below"
    assert "train (8 tasks)" in body or "test (" in body, "the Datasets column shows the cell's datasets"
    _screenshot(chrome, tmp_path, "runs")

    # The parent run's overview: its description is the report.
    chrome.get(f"{base}/runs/{parent.info.run_id}?workflowType=machine_learning")
    body = _wait_text(chrome, "held-out rougeL, mean over seeds")
    assert "training instances per task" in body and "curve/mean/rougeL" in body
    _screenshot(chrome, tmp_path, "report")

    # Its model metrics: the curve as MLflow's own chart.
    chrome.get(f"{base}/runs/{parent.info.run_id}/model-metrics?workflowType=machine_learning")
    _wait_text(chrome, "curve/mean")
    search = _wait_element(chrome, "input[placeholder*='Search metric']")
    search.send_keys("curve/mean/rougeL")
    body = _wait_text(chrome, "curve/mean")
    began, drawn = time.time(), 0
    while time.time() - began < 60 and drawn < 3:  # the mean and its two CI bounds, each a drawn line
        drawn = chrome.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).filter("
            "p => p.querySelector('.scatterlayer path.js-line')).length")
        time.sleep(0.5)
    assert drawn >= 3, f"the curve charts have drawn lines ({drawn} of 3)"
    _screenshot(chrome, tmp_path, "curve")


def test_ui_stopped_with_sigterm_leaves_no_process_behind(smoke_sweep):
    import signal

    from tests.conftest import descendants

    workdir, _ = smoke_sweep
    port = _free_port()
    process = start_cli("ui", "--port", str(port), cwd=workdir)
    try:
        _wait_for_page(port)
        below = descendants(process.pid)
        assert len(below) >= 2, "the UI runs a server with helpers"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        began = time.time()
        while time.time() - began < 20 and [p for p in below if Path(f"/proc/{p}").exists()]:
            time.sleep(0.2)
        left = [p for p in below if Path(f"/proc/{p}").exists()]
    finally:
        kill_tree(process)
    assert process.returncode == 130
    assert not left, "none of the UI's server processes outlives it"
