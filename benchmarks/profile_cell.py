"""Profile cells of a sweep in this process (no Ray), with pyinstrument: the first cell pays the
imports a fresh worker pays; the second is what a reused worker does.

    pip install pyinstrument
    python benchmarks/profile_cell.py SPEC [--cells 2] [--out DIR] [--set KEY=VALUE ...]

Writes cell<N>.txt (and .html) to DIR (default: profiles/) and prints each cell's wall time.
For the driver: `pyinstrument -m ablate.cli sweep SPEC`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--out", default="profiles")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pyinstrument import Profiler

    import torch

    from ablate.cell import CellPlace, run_cell
    from ablate.prepare import prepare_sweep
    from ablate.track import CellTracker, Store

    torch.set_num_threads(1)  # as a cell with resources.cpus_per_cell: 1
    work = Path(tempfile.mkdtemp(prefix="ablate-profile-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_sweep(args.spec, args.overrides, tracking_uri=f"sqlite:///{work / 'mlflow.db'}", workdir=work)
    store = Store(prepared.tracking_uri)
    experiment = store.ensure_experiment(prepared.experiment)
    parent = store.start_parent_run(experiment, prepared.spec.name, {})
    for number, cell in enumerate(prepared.cells[:args.cells]):
        profiler = Profiler(interval=0.002)
        began = time.perf_counter()
        profiler.start()
        tracker = CellTracker.start(prepared.tracking_uri, experiment, parent, cell_id=cell.id, name=cell.name,
                                    sweep=prepared.spec.name, axis_values=cell.axis_values,
                                    settings=cell.settings.model_dump(mode="json"),
                                    data_fingerprint=cell.settings.data_fingerprint)
        with tracker.system_metrics():
            run_cell(cell, CellPlace(cache_dir=work / "cache"), tracker)
        tracker.finish()
        profiler.stop()
        (out / f"cell{number}.txt").write_text(profiler.output_text())
        (out / f"cell{number}.html").write_text(profiler.output_html())
        print(f"cell {number} ({cell.name}): {time.perf_counter() - began:.2f} s -> {out / f'cell{number}.txt'}")


if __name__ == "__main__":
    main()
