"""Where a cell's wall time goes, in parts that do not overlap: each second is charged to exactly
one part, so the parts add up to the cell's wall time with only the rest unaccounted.

    startup      the trial's imports (torch, transformers, MLflow: slow in a worker's first cell only)
    setup        the trial's own start: reattaching or creating the MLflow run, the first checkpoint
    data         reading tasks, sampling, encoding and tokenizing (every stage's data too)
    tokenizer    building or loading the tokenizer
    model        building the model (and LoRA adapters) and moving it to its device
    train        the stages' training steps
    checkpoints  writing the resumable checkpoints Tune keeps
    eval         every evaluator on every test encoding
    logging      every call to the tracking store (metrics, params, artifacts), wherever it happens

The driver adds `cell_wall_seconds` (trial start to end, as it saw it), the launch before the
trial's first line (`time/launch_seconds`: a new worker process's start is in it) and the
unaccounted rest.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

PARTS = ("startup", "setup", "data", "tokenizer", "model", "train", "checkpoints", "eval", "logging")


class CellClock:
    """Charges elapsed time to the current part; time spent in the store (read from
    `store_seconds()`, the tracker's running total) goes to `logging`. Parts may nest (a
    checkpoint inside training): the inner part's time is taken out of the outer one."""

    def __init__(self, store_seconds: Callable[[], float] = lambda: 0.0,
                 now: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self._store_seconds = store_seconds
        self._now = now
        self._frames: list[list[float]] = []  # per open part: [seconds of inner parts, store seconds inside them]

    @contextmanager
    def part(self, name: str):
        began, store_began = self._now(), self._store_seconds()
        self._frames.append([0.0, 0.0])
        try:
            yield
        finally:
            inner, inner_store = self._frames.pop()
            elapsed, stored = self._now() - began, self._store_seconds() - store_began
            logged = stored - inner_store  # store time of this part's own calls
            self.seconds[name] += elapsed - inner - logged
            self.seconds["logging"] += logged
            if self._frames:
                self._frames[-1][0] += elapsed
                self._frames[-1][1] += stored

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds

    def move(self, source: str, target: str, seconds: float) -> None:
        """Charge `seconds` of `source`'s time to `target` instead (a part measured inside another)."""
        moved = min(seconds, self.seconds[source])
        self.seconds[source] -= moved
        self.seconds[target] += moved

    def timed(self, name: str, action: Callable) -> Callable:
        """`action` wrapped so each call's time is charged to `name` (e.g. checkpoints inside training)."""
        def wrapped(*args, **kwargs):
            with self.part(name):
                return action(*args, **kwargs)

        return wrapped
