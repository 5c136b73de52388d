"""Every performance figure of ablate, each with its target and PASS/FAIL (about 13 minutes on 2 CPUs).

    python benchmarks/run_all.py [--only NAME ...] [--keep DIR] [--json FILE]

Figures are ratios (or times) measured in one run, because absolute times on shared machines
drift; see benchmarks/performance.py for how each is measured. Exit status 1 when any figure
fails its target. The GPU part runs only where torch sees a GPU (it says NOT RUN elsewhere).
Profiles: `pyinstrument -m ablate.cli sweep SPEC` for the driver; benchmarks/profile_cell.py for a cell.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import performance  # noqa: E402
from common import print_figures  # noqa: E402

# key: (title, function, work folder). Figures 1, 3 and 4 share one MLflow store, as a project's sweeps do.
PARTS = {
    "overhead": ("1 and 4. Cell overhead against a bare loop; parallelism", performance.overhead_and_parallelism,
                 "sweeps"),
    "efficiency": ("3. Sweep efficiency (clusters sweep, 2 seeds)", performance.sweep_efficiency, "sweeps"),
    "throughput": ("2. Training throughput against HF Trainer", performance.training_throughput, "throughput"),
    "matrix": ("5. Train once, evaluate many", performance.train_once_evaluate_many, "matrix"),
    "rerun": ("6. Re-run and planning", performance.rerun_and_planning, "rerun"),
    "evaluation": ("7. Evaluation and data", performance.evaluation_and_data, "evaluation"),
    "gpu": ("8. GPU sharing", performance.gpu_sharing, "gpu"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(PARTS), help="run only these parts")
    parser.add_argument("--keep", help="work in this folder and keep it (stores, Ray logs)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ablate-bench-"))
    began = time.perf_counter()
    results = {}
    try:
        for key in args.only or list(PARTS):
            title, measure, folder = PARTS[key]
            workdir = root / folder
            workdir.mkdir(parents=True, exist_ok=True)
            part_began = time.perf_counter()
            figures = measure(workdir)
            print_figures(f"{title}  ({time.perf_counter() - part_began:.0f} s)", figures)
            results[key] = figures
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    every = [f for figures in results.values() for f in figures]
    failed = [f for f in every if f.ok is False]
    judged = [f for f in every if f.ok is not None]
    print(f"\n{len(judged) - len(failed)} of {len(judged)} targets met; {len(failed)} failed; "
          f"{sum(f.value is None for f in every)} not run here. Total {time.perf_counter() - began:.0f} s.")
    for f in failed:
        print(f"FAIL: {f.name} = {f.value:.3f} (target {f.target})")
    if args.json:
        Path(args.json).write_text(json.dumps({k: [asdict(f) for f in v] for k, v in results.items()}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
