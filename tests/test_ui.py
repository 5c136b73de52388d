"""`ablate ui` serves the MLflow UI for the store on 127.0.0.1 only."""

import socket
import time
import urllib.request

import pytest

from tests.conftest import kill_tree, start_cli

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


def test_ui_serves_the_store_on_loopback_only(tmp_path):
    port = _free_port()
    ui = start_cli("ui", "--port", str(port), cwd=tmp_path)
    try:
        began, page = time.time(), None
        while time.time() - began < 90 and page is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert page is not None and "mlflow" in page.lower()
        outward = _outward_address()
        if outward is not None:
            with pytest.raises(OSError):
                socket.create_connection((outward, port), timeout=2).close()
    finally:
        kill_tree(ui)
    output = ui.stdout.read()
    assert f"http://127.0.0.1:{port}" in output
