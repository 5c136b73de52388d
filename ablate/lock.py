"""One `ablate sweep` per output folder at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ablate.errors import AblateError


class SweepLock:
    """One `ablate sweep` per output folder at a time; a second one refuses with a clear message."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / ".lock"
        self.handle = None

    def __enter__(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise AblateError(f"another `ablate sweep` ({holder}) is running with this output folder.",
                              file=str(self.path), fix="wait for it to finish; its cells are not trained twice.") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()

