"""Process hygiene: nothing ablate starts outlives the command that started it.

A sweep records the processes of its local Ray runtime (GCS, raylet, helpers and workers) by PID,
so that none outlives it, and the next sweep in the same output folder stops what a killed one
left behind. Only processes that the sweep started are ever recorded or stopped: a PID counts
only while its start time matches the recorded one (PIDs are reused). `ablate ui` runs its
server in a process group of its own and stops the whole group when it ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil

# How long a recorded process gets to exit after SIGTERM before it is killed.
GRACE_SECONDS = 5.0
# How often the running sweep adds the processes Ray started since (workers come and go).
WATCH_SECONDS = 2.0


class ProcessRecord:
    """`processes.json` in a sweep's output folder: {pid: start time} of what the sweep started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: dict[int, float] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def reap_leftovers(self) -> int:
        """Stop the recorded processes of an earlier sweep that did not end cleanly; returns how many."""
        try:
            recorded = {int(pid): float(created) for pid, created in json.loads(self.path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            recorded = {}
        stopped = stop_processes(recorded)
        self.path.unlink(missing_ok=True)
        return stopped

    def watch(self) -> None:
        """Record every process below this one now, and every WATCH_SECONDS until `close`."""
        self.add_descendants()
        self._watcher = threading.Thread(target=self._watch, name="ablate-process-record", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            self.add_descendants()

    def add_descendants(self) -> None:
        found = {}
        for child in psutil.Process().children(recursive=True):
            try:
                found[child.pid] = child.create_time()
            except psutil.Error:
                pass
        if set(found.items()) <= set(self.known.items()):
            return
        self.known.update(found)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({str(pid): created for pid, created in self.known.items()}))
        os.replace(partial, self.path)

    def close(self) -> int:
        """After the runtime was shut down: stop whatever of ours is still alive; returns how many."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        stopped = stop_processes(self.known)
        self.path.unlink(missing_ok=True)
        return stopped


def alive_processes(recorded: dict[int, float]) -> list[psutil.Process]:
    """The recorded processes still running: same PID and the same start time (PIDs are reused)."""
    alive = []
    for pid, created in recorded.items():
        try:
            process = psutil.Process(pid)
            if abs(process.create_time() - created) < 0.01 and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.Error:
            pass
    return alive


def stop_processes(recorded: dict[int, float]) -> int:
    """SIGTERM the recorded processes still alive, SIGKILL those that outlast GRACE_SECONDS;
    returns how many were alive."""
    alive = alive_processes(recorded)
    for process in alive:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, lingering = psutil.wait_procs(alive, timeout=GRACE_SECONDS)
    for process in lingering:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(lingering, timeout=GRACE_SECONDS)
    return len(alive)


def supervise(command: list[str]) -> int:
    """Run a server in a process group of its own until it exits or we are stopped (Ctrl-C,
    SIGTERM, SIGHUP); then stop the whole group, so that none of its helpers (MLflow's web
    workers, its job consumers) outlives the command. Returns the server's exit status."""
    def stopped(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stopped)
    # preexec_fn runs before exec in the child; the CLI has started no threads by then.
    server = subprocess.Popen(command, start_new_session=True, preexec_fn=_terminate_when_parent_dies)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        code = 130
    finally:
        _stop_group(server)
    return code


def _terminate_when_parent_dies() -> None:
    """In the child, before exec: Linux sends it SIGTERM if the supervisor is killed (kill -9)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop_group(server: subprocess.Popen) -> None:
    for signum, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, signum)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; its helpers may not be
        began = time.time()
        while time.time() - began < grace:
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
