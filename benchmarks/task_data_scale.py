"""Full-scale task data: the same cell on the 37-task built-in suite and inside a generated
directory the size of the SuperNI release (default 3.2 GB in about 1,600 task files).

    python benchmarks/task_data_scale.py [--gb 3.2] [--dir /tmp/big-tasks] [--scenario suite|split|both] [--small]

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

The split-sized scenario (`--scenario split`) is a cell the size of SuperNI's default split: it
trains on 756 tasks x 64 instances and tests on 119 tasks (20 instances each) of a 1,665-task
directory (14,000 instances per task: 3.26 GB), against the same cell on the 37-task suite sampling
as many instances (27 training tasks x 1,792, 10 test tasks x 238). t5-tiny, 10 steps. Figures:
- data preparation (`time/data_seconds`), split-sized cell / 37-task cell: <= 2;
- the unaccounted share of the split-sized cell's wall time (`time/unaccounted_seconds` /
  `cell_wall_seconds`): <= 5%;
- the split-sized cell's wall time once its worker is up (less `time/launch_seconds` and `time/startup_seconds`) / (train +
  eval + data): <= 1.1;
- the one-time conversion (the index and the columnar store, ablate/data/columnar.py): its time
  and peak memory, beside those of the index alone, reported.
`--small` tries it quickly: 1,665 task files of 300 instances each (about 70 MB).
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


SPLIT_TRAIN, SPLIT_TEST, SPLIT_TASKS, SPLIT_NAME = 756, 119, 1665, "split_sized"
SPLIT_SPEC = {"name": "split", "data": {"source": "./tasks", "instances_per_task": 64, "split": SPLIT_NAME},
              "model": "t5-tiny",
              "train": {"steps": 10, "batch_size": 16, "learning_rate": 1.0e-3, "max_source_length": 96,
                        "max_target_length": 16, "encoding": "def+pos2", "log_every": 5},
              "eval": {"instances_per_task": 20, "max_new_tokens": 8}, "seeds": [0],
              "resources": {"max_concurrent": 1}}


def make_split_directory(folder: Path, instances: int) -> Path:
    """1,665 task files (the built-in suite's 37, copied; each copy's bytes differ by trailing
    whitespace, so each is converted on its own, as a release's files are) with a split of
    SuperNI's default sizes: 756 training and 119 test tasks, copies of the suite's training and
    test tasks."""
    from ablate.data.synthetic import write_suite

    write_suite(folder, seed=0, num_instances=instances)
    default = {k: (folder / "splits" / "default" / f"{k}_tasks.txt").read_text().split() for k in ("train", "test")}
    originals = sorted((folder / "tasks").glob("*.json"))
    train, test = list(default["train"]), list(default["test"])
    for i in range(math.ceil(SPLIT_TASKS / len(originals)) - 1):
        for path in originals:
            if len(list(folder.glob("tasks/*.json"))) >= SPLIT_TASKS:
                break
            name = f"{path.stem}_extra{i}"
            shutil.copyfile(path, folder / "tasks" / f"{name}.json")
            with open(folder / "tasks" / f"{name}.json", "a") as copy:  # its own content (hash), like a real task's
                copy.write("\n" * (i + 1))
            (train if path.stem in default["train"] else test if path.stem in default["test"] else []).append(name)
    split = folder / "splits" / SPLIT_NAME
    split.mkdir(parents=True, exist_ok=True)
    (split / "train_tasks.txt").write_text("\n".join(train[:SPLIT_TRAIN]) + "\n")
    (split / "test_tasks.txt").write_text("\n".join(test[:SPLIT_TEST]) + "\n")
    return folder


CONVERT = """
import json, re, sys, time
from pathlib import Path
from ablate.data.index import load_index
from ablate.data.library import TaskLibrary
library = TaskLibrary(sys.argv[1], index_dir=Path(sys.argv[2]), persist_index=sys.argv[3] == "store")
began = time.perf_counter()
if sys.argv[3] == "store":
    library.index  # the index and the columnar store, saved in the sweep's cache folder
else:
    load_index(library.root, library.names(), "none", None, False)  # the index alone, saved nowhere
# VmHWM: this process's own peak (ru_maxrss keeps the benchmark's peak across the exec)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_kb / 1024}))
"""


def conversion(directory: Path, index_dir: Path, store: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", CONVERT, str(directory), str(index_dir), "store" if store else "-"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"the conversion failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def split_cell(directory: Path, workdir: Path, spec: dict) -> dict:
    """The one cell of `spec` swept in `workdir` (its task directory linked in), after its index
    and columnar store are built in the sweep's cache folder (timed, in a process of its own)."""
    from mlflow.tracking import MlflowClient

    workdir.mkdir(parents=True)
    (workdir / "tasks").symlink_to(directory.resolve(), target_is_directory=True)
    (workdir / "split.yaml").write_text(yaml.safe_dump(spec))
    figures = {"index_alone": conversion(directory, workdir / "scratch-index", store=False),
               "conversion": conversion(directory, workdir / "ablate_runs" / spec["name"] / "cache" / "index", True)}
    figures["sweep"], _ = run(["sweep", "split.yaml"], workdir)
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(spec["name"])
    (cell,) = client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")
    metrics = cell.data.metrics
    figures["times"] = {k: round(v, 2) for k, v in sorted(metrics.items())
                        if k.startswith("time/") or k in ("cell_wall_seconds", "data_seconds")}
    return figures


def split_scenario(args, scratch: Path) -> list[tuple]:
    from ablate.data.synthetic import write_suite

    began = time.time()
    big = Path(args.dir) if args.dir else scratch / "split-big"
    if not (big / "splits" / SPLIT_NAME).is_dir():
        make_split_directory(big, 300 if args.small else args.instances)
    files = list((big / "tasks").glob("*.json"))
    print(f"split-sized directory: {len(files)} task files, {sum(p.stat().st_size for p in files) / 1e9:.2f} GB "
          f"({time.time() - began:.0f} s to make)")
    default = {k: len((big / "splits" / "default" / f"{k}_tasks.txt").read_text().split()) for k in ("train", "test")}
    train_count = SPLIT_TRAIN * SPLIT_SPEC["data"]["instances_per_task"]
    test_count = SPLIT_TEST * SPLIT_SPEC["eval"]["instances_per_task"]
    per_train, per_test = math.ceil(train_count / default["train"]), math.ceil(test_count / default["test"])
    suite = write_suite(scratch / "split-suite", seed=0, num_instances=max(per_train, per_test))
    reference_spec = {**SPLIT_SPEC, "name": "suite",
                      "data": {"source": "./tasks", "instances_per_task": per_train},
                      "eval": {**SPLIT_SPEC["eval"], "instances_per_task": per_test}}
    print(f"sampled instances: split-sized {train_count} train + {test_count} test; 37-task suite "
          f"{per_train * default['train']} + {per_test * default['test']}")
    reference = split_cell(suite, scratch / "run-split-suite", reference_spec)
    measured = split_cell(big, scratch / "run-split-big", SPLIT_SPEC)
    print(json.dumps({"37-task suite": reference, "split-sized": measured}, indent=1))
    times, ref = measured["times"], reference["times"]
    wall = times["cell_wall_seconds"]
    work = times["time/train_seconds"] + times["time/eval_seconds"] + times["time/data_seconds"]
    # Once the worker is up: the wall time less the trial's launch and its imports.
    up = wall - times["time/launch_seconds"] - times["time/startup_seconds"]
    per_instance = (ref["time/data_seconds"] / (per_train * default["train"] + per_test * default["test"]))
    print(f"\nthe one-time conversion: index + columnar store {measured['conversion']['seconds']:.1f} s, "
          f"{measured['conversion']['peak_mb']:.0f} MB peak RSS (the index alone: "
          f"{measured['index_alone']['seconds']:.1f} s, {measured['index_alone']['peak_mb']:.0f} MB)")
    return [
        ("split-sized: data preparation, split-sized / 37-task", times["time/data_seconds"]
         / (per_instance * (train_count + test_count)), "<=", 2.0),
        ("split-sized: unaccounted share of the cell's wall time", times["time/unaccounted_seconds"] / wall,
         "<=", 0.05),
        ("split-sized: wall once the worker is up / (train+eval+data)",
         up / work, "<=", 1.1),
    ]


def suite_scenario(args, scratch: Path) -> list[tuple]:
    small = scratch / "small"
    from ablate.data.synthetic import write_suite

    write_suite(small, seed=0)
    big = Path(args.dir) if args.dir else scratch / "big"
    began = time.time()
    if not (big / "tasks").is_dir():
        make_directory(big, 0.1 if args.small else args.gb)
    files = list((big / "tasks").glob("*.json"))
    gigabytes = sum(p.stat().st_size for p in files) / 1e9
    print(f"big directory: {len(files)} task files, {gigabytes:.2f} GB ({time.time() - began:.0f} s to make)")
    reference = sweep_in(small, scratch / "run-small")
    measured = sweep_in(big, scratch / "run-big")
    print(json.dumps({"built-in suite": reference, "big directory": measured}, indent=1))
    print(f"\nfirst validate (no index yet): {measured['first_validate']:.1f} s; "
          f"the sweep: {measured['sweep']:.0f} s big, {reference['sweep']:.0f} s built-in")
    return [
        ("cell peak memory, big / built-in", measured["peak_mb"] / reference["peak_mb"], "<=", 1.5),
        ("cell data preparation, share of its wall time (big)", measured["data_share"], "<=", 0.10),
        ("validate once the index exists, s (big)", measured["validate"], "<", 5.0),
        ("plan once the index exists, s (big)", measured["plan"], "<", 5.0),
        ("report, s (big)", measured["report"], "<", 10.0),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=3.2, help="size of the big task directory")
    parser.add_argument("--instances", type=int, default=14_000,
                        help="instances per task file of the split-sized directory (14,000: 3.26 GB)")
    parser.add_argument("--scenario", choices=("suite", "split", "both"), default="both",
                        help="suite: the 37-task cell in a big directory; split: a cell of the default split's size")
    parser.add_argument("--small", action="store_true", help="a quick try: a 0.1 GB directory, 300-instance task files")
    parser.add_argument("--dir", help="where to build (or reuse) the big directory; default: a temporary folder")
    args = parser.parse_args()
    if args.dir and args.scenario == "both":
        parser.error("--dir names one directory: give --scenario suite or split with it")
    scratch = Path(tempfile.mkdtemp(prefix="ablate-scale-"))
    try:
        checks = []
        if args.scenario in ("suite", "both"):
            checks += suite_scenario(args, scratch)
        if args.scenario in ("split", "both"):
            checks += split_scenario(args, scratch)
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
