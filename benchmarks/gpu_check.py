"""GPU check: run on a machine with a GPU (under 5 minutes) after `pip install -e .`.

    python benchmarks/gpu_check.py [--workdir DIR]

Three small sweeps through the real `ablate` CLI (local Ray, a SQLite MLflow store in DIR):
1. a t5-small and a llama-small cell (about 44M parameters each), bf16, one GPU per cell;
2. four t5-tiny cells sharing one GPU (`resources.gpus_per_cell: 0.25`, 4 at once);
3. the t5-small cell again on the CPU, for the GPU/CPU throughput ratio.
It prints each cell's device, examples/s and peak memory, and exits non-zero when a GPU cell
never touched the GPU (its device tag is not cuda, or torch allocated no GPU memory).
The GPU performance figures (cells per GPU-hour at 0.25 vs 1 GPU per cell, GPU utilisation of a
t5-small cell) are part 8 of `python benchmarks/run_all.py --only gpu`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BASE = {
    "data": {"source": "synthetic", "held_out_clusters": ["nli", "commonsense", "closed_book_qa"],
             "instances_per_task": 64},
    "train": {"steps": 60, "batch_size": 32, "learning_rate": 5.0e-4, "max_source_length": 64,
              "max_target_length": 16, "encoding": "def", "checkpoint_every": 1000, "log_every": 10},
    "eval": {"instances_per_task": 20, "max_new_tokens": 8, "batch_size": 64},
}


def spec(name: str, models: list[str], seeds: list[int], resources: dict, precision: str = "auto") -> dict:
    train = {**BASE["train"], "precision": precision}
    return {"name": name, "data": BASE["data"], "model": models[0], "train": train, "eval": BASE["eval"],
            "seeds": seeds, "resources": resources, "axes": {"model": models} if len(models) > 1 else {}}


def run(workdir: Path, sweep: dict) -> tuple[float, list]:
    from mlflow.tracking import MlflowClient

    path = workdir / f"{sweep['name']}.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    exe = shutil.which("ablate", path=str(Path(sys.executable).parent)) or "ablate"
    began = time.time()
    done = subprocess.run([exe, "sweep", str(path)], cwd=workdir, text=True, capture_output=True)
    seconds = time.time() - began
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"FAIL: sweep {sweep['name']} exited {done.returncode}")
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(sweep["name"])
    return seconds, client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")


def describe(runs: list) -> list[dict]:
    rows = []
    for r in runs:
        rows.append({"cell": r.info.run_name, "device": r.data.tags.get("ablate.device"),
                     "gpu": r.data.tags.get("ablate.gpu_name", "-"), "torch": r.data.tags.get("ablate.torch_version"),
                     "cuda": r.data.tags.get("ablate.cuda_version"),
                     "examples_per_second": round(r.data.metrics.get("examples_per_second", 0.0), 1),
                     "peak_memory_mb": round(r.data.metrics.get("peak_memory_mb", 0.0), 1)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", help="folder for the store and Ray logs (default: a temporary one)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("FAIL: no GPU visible to torch on this machine")
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ablate-gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report, failures = {}, []

    big_seconds, big = run(workdir, spec("gpu_big", ["t5-small", "llama-small"], [0],
                                         {"gpus_per_cell": 1, "cpus_per_cell": 2, "max_concurrent": 1}, "bf16"))
    shared_seconds, shared = run(workdir, spec("gpu_shared", ["t5-tiny"], [0, 1, 2, 3],
                                               {"gpus_per_cell": 0.25, "cpus_per_cell": 2, "max_concurrent": 4}))
    cpu_sweep = spec("cpu_reference", ["t5-small"], [0], {"gpus_per_cell": 0, "cpus_per_cell": 4, "max_concurrent": 1},
                     "fp32")
    cpu_sweep["train"]["steps"] = 10
    cpu_seconds, cpu = run(workdir, cpu_sweep)

    for name, runs in (("one GPU per cell, bf16", big), ("4 cells sharing one GPU", shared)):
        rows = describe(runs)
        report[name] = rows
        for row in rows:
            if row["device"] != "cuda" or row["peak_memory_mb"] <= 0:
                failures.append(f"{row['cell']} did not run on the GPU ({row})")
    report["cpu reference"] = describe(cpu)
    gpu_t5 = next(r for r in report["one GPU per cell, bf16"] if "t5-small" in r["cell"])
    cpu_t5 = report["cpu reference"][0]
    report["gpu_cpu_throughput_ratio_t5_small"] = round(gpu_t5["examples_per_second"] /
                                                        max(cpu_t5["examples_per_second"], 1e-9), 1)
    report["wall_seconds"] = {"gpu_big": round(big_seconds), "gpu_shared": round(shared_seconds),
                              "cpu_reference": round(cpu_seconds)}
    print(json.dumps(report, indent=2))
    for failure in failures:
        print("FAIL:", failure)
    print("PASS: every GPU cell ran on the GPU" if not failures else f"{len(failures)} cell(s) never touched the GPU")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
