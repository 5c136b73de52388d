"""Where a sweep's wall time goes, and running two start-up jobs side by side."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ablate import results


@dataclass
class SweepTiming:
    """Where a sweep's wall time went: its phases (setup and Ray's start overlap), and the cells'
    own wall times (as the driver saw them) against it. `efficiency` is the wall time over the
    ideal, the cells' time spread over the cells that ran at once: 1.0 means no time was lost
    around the cells (start-up, scheduling, report, an idle slot at the end)."""

    began: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)  # results.TIMING_PHASES -> seconds
    total: float = 0.0  # set by `stop`
    cell_seconds: float = 0.0
    concurrency: int = 0

    @contextmanager
    def phase(self, name: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - began

    def stop(self, outcomes) -> None:
        self.total = time.perf_counter() - self.began
        self.cell_seconds = sum(o.seconds for o in outcomes if o.seconds is not None)

    @property
    def efficiency(self) -> float | None:
        if not self.cell_seconds or not self.concurrency:
            return None
        return self.total / (self.cell_seconds / self.concurrency)

    def metrics(self) -> dict[str, float]:
        metrics = {results.timing_key(name): seconds for name, seconds in self.phases.items()}
        metrics.update({results.TIMING_TOTAL: self.total, results.TIMING_CELL_SUM: self.cell_seconds,
                        results.TIMING_CONCURRENCY: self.concurrency})
        if self.efficiency is not None:
            metrics[results.TIMING_EFFICIENCY] = self.efficiency
        return metrics

    def summary(self) -> str:
        phases = ", ".join(f"{name.replace('_', ' ')} {self.phases[name]:.1f} s"
                           for name in results.TIMING_PHASES if name in self.phases)
        line = f"Time: {self.total:.0f} s ({phases})"
        if self.efficiency is not None:
            line += (f"; the cells' own time {self.cell_seconds:.0f} s at {self.concurrency} at once, so the "
                     f"wall time is {self.efficiency:.2f}x the ideal")
        return line + "."


def overlapped(foreground, background):
    """Run `background()` in a thread while `foreground()` runs here; returns background's result
    (its exception, if any, is raised here once both are done). The sweep starts Ray (which must
    start on the main thread) while it prepares MLflow and the baselines."""
    import threading

    outcome: dict = {}

    def work():
        try:
            outcome["value"] = background()
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="ablate-setup", daemon=True)
    thread.start()
    try:
        foreground()
    finally:
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]

