"""Full-scale task data: the same cell on the 37-task built-in suite and inside a generated
directory the size of the SuperNI release (default 3.2 GB in about 1,600 task files).

    python benchmarks/task_data_scale.py [--gb 3.2] [--dir /tmp/big-tasks]

The big directory holds the built-in suite's tasks (same names, same splits) with about 14,000
instances each, plus enough copies of them outside every split to reach the size: like the real
release, whose default split names 875 of its 1,600 tasks. So both sweeps run the very same cell
(same training and test tasks and instances) and differ only in the directory around it.

Figures, each with its target and PASS/FAIL (ratios and shares measured in one run):
- peak memory (RSS) of the cell process, big directory / built-in suite: <= 1.5;
- the cell's data preparation (reading its tasks, sampling, encoding, tokenizing: its
  `data_seconds` metric) as a share of its wall time, in the big directory: <= 0.10;
- `ablate validate` and `ablate plan` once the sweep has saved the index: under 5 s each;
- `ablate report`: under 10 s.
It also prints how long the first `validate` takes (no index yet: it reads the task files the spec uses).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPEC = {"name": "scale", "data": {"source": "./tasks", "instances_per_task": 64}, "model": "t5-tiny",
        "train": {"steps": 300, "batch_size": 16, "learning_rate": 1.0e-3, "max_source_length": 96,
                  "max_target_length": 16, "encoding": "def+pos2", "log_every": 50},
        "eval": {"instances_per_task": 50, "max_new_tokens": 8}, "seeds": [0]}


def make_directory(folder: Path, gigabytes: float) -> Path:
    from ablate.data.synthetic import write_suite

    write_suite(folder, seed=0, num_instances=14_000)
    originals = sorted((folder / "tasks").glob("*.json"))
    size = sum(p.stat().st_size for p in originals)
    copies = max(0, math.ceil(gigabytes * 1e9 / size) - 1)
    for i in range(copies):
        for path in originals:
            target = folder / "tasks" / f"{path.stem}_extra{i}.json"
            shutil.copyfile(path, target)
    return folder


def run(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    exe = str(Path(sys.executable).parent / "ablate")
    began = time.time()
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"ablate {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.time() - began, done


def cell_figures(workdir: Path) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("scale")
    (cell,) = client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")
    wall = (cell.info.end_time - cell.info.start_time) / 1000
    metrics = cell.data.metrics
    return {"peak_mb": metrics["peak_memory_mb"], "wall": wall, "data_share": metrics["data_seconds"] / wall,
            "outside_train_and_eval": 1 - (metrics["train_seconds"] + metrics["eval_seconds"]) / wall}


def sweep_in(directory: Path, workdir: Path) -> dict:
    workdir.mkdir(parents=True)
    (workdir / "tasks").symlink_to(directory.resolve(), target_is_directory=True)
    (workdir / "scale.yaml").write_text(yaml.safe_dump(SPEC))
    figures: dict = {}
    figures["first_validate"], _ = run(["validate", "scale.yaml"], workdir)
    figures["sweep"], _ = run(["sweep", "scale.yaml"], workdir)
    figures["validate"], _ = run(["validate", "scale.yaml"], workdir)
    figures["plan"], _ = run(["plan", "scale.yaml"], workdir)
    figures["report"], _ = run(["report", "scale.yaml"], workdir)
    figures.update(cell_figures(workdir))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=3.2, help="size of the big task directory")
    parser.add_argument("--dir", help="where to build (or reuse) the big directory; default: a temporary folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ablate-scale-"))
    try:
        small = scratch / "small"
        from ablate.data.synthetic import write_suite

        write_suite(small, seed=0)
        big = Path(args.dir) if args.dir else scratch / "big"
        began = time.time()
        if not (big / "tasks").is_dir():
            make_directory(big, args.gb)
        files = list((big / "tasks").glob("*.json"))
        gigabytes = sum(p.stat().st_size for p in files) / 1e9
        print(f"big directory: {len(files)} task files, {gigabytes:.2f} GB ({time.time() - began:.0f} s to make)")
        reference = sweep_in(small, scratch / "run-small")
        measured = sweep_in(big, scratch / "run-big")
        print(json.dumps({"built-in suite": reference, "big directory": measured}, indent=1))
        checks = [
            ("cell peak memory, big / built-in", measured["peak_mb"] / reference["peak_mb"], "<=", 1.5),
            ("cell data preparation, share of its wall time (big)", measured["data_share"], "<=", 0.10),
            ("validate once the index exists, s (big)", measured["validate"], "<", 5.0),
            ("plan once the index exists, s (big)", measured["plan"], "<", 5.0),
            ("report, s (big)", measured["report"], "<", 10.0),
        ]
        print(f"\nfirst validate (no index yet): {measured['first_validate']:.1f} s; "
              f"the sweep: {measured['sweep']:.0f} s big, {reference['sweep']:.0f} s built-in")
        failed = 0
        for name, value, sign, target in checks:
            ok = value <= target if sign == "<=" else value < target
            failed += not ok
            print(f"{name:<58} {value:8.3f}   target {sign} {target:g}   {'PASS' if ok else 'FAIL'}")
        return 1 if failed else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
