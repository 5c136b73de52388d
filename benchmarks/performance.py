"""ablate's cost against a bare loop, and what it saves: each figure a ratio (or a time) measured in
one run, with its target. `benchmarks/run_all.py` runs them all; each function here runs one part
in its own work folder, through the real `ablate` CLI where the figure is about the CLI.

All sweeps use the built-in synthetic suite and t5-tiny (the embedded default), 1 CPU per cell.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import (Figure, ablate, cell_data, cell_of, cell_runs, check, info, parent_metrics, store,
                    write_spec)

HERE = Path(__file__).resolve().parent

# The shipped clusters sweep (sweeps/clusters.yaml), the model of every sweep below.
CLUSTERS = {
    "name": "clusters",
    "data": {"source": "synthetic", "held_out_clusters": ["nli", "commonsense", "closed_book_qa"],
             "instances_per_task": 64},
    "model": "t5-tiny",
    "train": {"steps": 800, "batch_size": 32, "learning_rate": 1.0e-3, "max_source_length": 64,
              "max_target_length": 16, "encoding": "def", "checkpoint_every": 400},
    "eval": {"instances_per_task": 50, "max_new_tokens": 8},
    "seeds": [0, 1, 2],
    "resources": {"cpus_per_cell": 1, "max_concurrent": 2},
    "axes": {"train_clusters": {"cumulative": ["program_execution", "extraction", "summarization",
                                               "reading_comprehension", "sentiment"]}},
}


def variant(name: str, **changes) -> dict:
    """The clusters sweep with some sections changed: `data`, `train`, `eval` and `resources` are
    updated key by key; anything else (`axes`, `seeds`, `model`) is replaced."""
    spec = copy.deepcopy(CLUSTERS)
    spec["name"] = name
    for key, value in changes.items():
        spec[key] = {**spec[key], **value} if key in ("data", "train", "eval", "resources") else value
    return spec


def overhead_and_parallelism(workdir: Path, steps: int = 200) -> list[Figure]:
    """1 and 4. Four cells (two cluster counts x two seeds, 1 CPU each) swept one at a time, then
    two at a time, and one of them as a plain script.

    One at a time, the first cell starts the worker (imports torch, transformers and MLflow) and
    the next three reuse it: the second cell against the plain script's own time (after its
    imports) is ablate's cost per cell once Ray is up. The speed-up compares the two sweeps'
    cells phases (trial start-up and each worker's first-cell imports included; Ray's start and
    the report are the same in both and counted by figure 3)."""
    base = dict(seeds=[0, 1], train={"steps": steps},
                axes={"train_clusters": {"cumulative": ["program_execution", "extraction"]}})
    phases, runs = {}, {}
    for at_once in (1, 2):
        name = f"parallel{at_once}"
        path = write_spec(workdir, variant(name, **base, resources={"max_concurrent": at_once, "cpus_per_cell": 1}))
        ablate(["sweep", str(path), "--yes"], workdir)
        phases[at_once] = parent_metrics(workdir, name)["timing/cells_seconds"]
        runs[at_once] = {r.data.tags["ablate.cell_id"]: r for r in cell_runs(workdir, name)}
    one_at_a_time = sorted(runs[1].values(), key=lambda r: r.info.start_time)
    warm, cold = one_at_a_time[1], one_at_a_time[0]
    path = workdir / "parallel1.yaml"
    began = time.perf_counter()
    # The thread settings Ray gives a 1-CPU worker, so both loops run on one core alike.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(HERE / "bare_cell.py"), str(path), str(workdir),
                           "--cell-id", warm.data.tags["ablate.cell_id"]], capture_output=True, text=True, cwd=workdir,
                          env=env)
    script_wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bare_cell.py failed:\n{done.stderr[-3000:]}")
    bare = json.loads(done.stdout.strip().splitlines()[-1])
    warm_m, cold_m = warm.data.metrics, cold.data.metrics
    return [
        info(f"bare script: training seconds (t5-tiny, {steps} steps)", bare["train_seconds"]),
        check("cell wall / bare loop, reused worker", warm_m["cell_wall_seconds"] / bare["work_seconds"], "<=", 1.02),
        check("fixed cost of a cell once Ray is up (reused worker), s",
              warm_m["cell_wall_seconds"] - bare["work_seconds"], "<", 1.0),
        info("first cell of a worker / bare script as a process (both import)",
             cold_m["cell_wall_seconds"] / script_wall),
        info("cell data preparation, share of its wall time", warm_m["data_seconds"] / warm_m["cell_wall_seconds"]),
        info("training loop, ablate / bare loop (train seconds)", warm_m["train_seconds"] / bare["train_seconds"]),
        check("speed-up of 4 cells, 2 at once vs 1 (2 cores)", phases[1] / phases[2], ">=", 1.8),
    ]


def training_throughput(workdir: Path) -> list[Figure]:
    """2. ablate's training loop against HF's Trainer on the same model, data and steps: T5 with
    Seq2SeqTrainer, and a Llama-shaped decoder-only model with Trainer."""
    import torch

    from ablate.model import build_model
    from ablate.train import train_model

    figures = []
    for model_name, causal, steps in (("t5-tiny", False, 60), ("llama-tiny", True, 24)):
        spec = variant(f"throughput-{model_name}", model=model_name, seeds=[0], axes={},
                       train={"steps": steps, "checkpoint_every": 10_000})
        path = write_spec(workdir, spec)
        cell = cell_of(path, workdir, seed=0)
        data = cell_data(cell, workdir / "cache", causal=causal)
        torch.set_num_threads(1)
        times = {}
        for runner in ("hf", "ablate", "hf2", "ablate2"):  # alternated, so drift in machine load cancels
            model = build_model(model_name, len(data.tokenizer), 0)
            began = time.perf_counter()
            if runner.startswith("ablate"):
                train_model(model, data.tokenizer, data.train_data, cell.settings.train, 0)
            else:
                _hf_train(model, data, cell.settings.train, workdir / "hf", causal)
            times.setdefault(runner.rstrip("2"), []).append(time.perf_counter() - began)
        ratio = sum(times["ablate"]) / sum(times["hf"])
        trainer = "Trainer" if causal else "Seq2SeqTrainer"
        figures.append(check(f"training time, ablate / HF {trainer} ({model_name}, {steps} steps)", ratio, "<=", 1.0))
    return figures


def _hf_train(model, data, train, output_dir: Path, causal: bool) -> None:
    from transformers import (DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer,
                              TrainingArguments)

    arguments = dict(output_dir=str(output_dir), max_steps=train.steps, per_device_train_batch_size=train.batch_size,
                     learning_rate=train.learning_rate, lr_scheduler_type=train.schedule,
                     warmup_steps=train.warmup_steps, weight_decay=train.weight_decay, max_grad_norm=1.0,
                     logging_steps=train.log_every, save_strategy="no", report_to=[], use_cpu=True,
                     dataloader_num_workers=0, disable_tqdm=True, seed=0)
    collate = DataCollatorForSeq2Seq(data.tokenizer, model=None if causal else model, label_pad_token_id=-100)
    features = data.train_data.select_columns(["input_ids", "attention_mask", "labels"])
    if causal:
        Trainer(model=model, args=TrainingArguments(**arguments), train_dataset=features,
                data_collator=collate).train()
    else:
        Seq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(**arguments), train_dataset=features,
                       data_collator=collate).train()


def sweep_efficiency(workdir: Path, steps: int = 450) -> list[Figure]:
    """3. The clusters sweep (two seeds: 10 cells, 2 at a time, in the store the sweeps above
    used): its wall time over the cells' own time spread over the 2 slots. Everything around the
    cells counts against it: the CLI's start, MLflow and Ray start-up, trial start-up, the report
    and Ray's shutdown."""
    spec = variant("efficiency", seeds=[0, 1], train={"steps": steps})
    path = write_spec(workdir, spec)
    wall, _ = ablate(["sweep", str(path), "--yes"], workdir)
    metrics = parent_metrics(workdir, "efficiency")
    ideal = metrics["timing/cell_seconds_sum"] / metrics["timing/concurrency"]
    return [
        check("clusters sweep wall time / (sum of cell wall times / 2)", wall / ideal, "<=", 1.05),
        info("  its wall time, s", wall),
        info("  set-up (MLflow, indexes, baselines; overlaps Ray's start), s", metrics["timing/setup_seconds"]),
        info("  Ray start, s", metrics["timing/ray_start_seconds"]),
        info("  cells phase / ideal", metrics["timing/cells_seconds"] / ideal),
        info("  report, s", metrics["timing/report_seconds"]),
    ]


def train_once_evaluate_many(workdir: Path, steps: int = 60) -> list[Figure]:
    """5. The 8 x 8 encodings matrix: ablate trains once per training encoding and evaluates that
    model under all 8 testing encodings (8 trainings); the naive way trains once per pair (64).
    Measured on one row of the matrix (all rows are alike): one cell with 8 testing encodings
    against 8 cells with one each (measured: one of them, 8 times)."""
    from ablate.cell import CellPlace, run_cell
    from ablate.track import CellTracker, Store

    encodings = ["task_id", "def", "pos2", "def+pos2", "def+pos2+neg2", "def+pos2+neg2+expl", "pos4", "def+pos4"]
    base = {"data": {"source": "synthetic", "instances_per_task": 64}, "model": "t5-tiny",
            "train": {"steps": steps, "batch_size": 32, "learning_rate": 1.0e-3, "max_source_length": 128,
                      "max_target_length": 16, "encoding": "def+pos2", "checkpoint_every": 10_000},
            "eval": {"instances_per_task": 20, "max_new_tokens": 8}, "seeds": [0]}
    matrix = write_spec(workdir, {**base, "name": "matrix_row", "axes": {"test_encoding": encodings}})
    naive = write_spec(workdir, {**base, "name": "naive_pair", "axes": {"test_encoding": ["def+pos2"]}})
    warm_up = write_spec(workdir, {**base, "name": "warm_up", "train": {**base["train"], "steps": 2}})
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    client = Store(tracking)
    seconds = {}
    for label, path in (("warm-up", warm_up), ("matrix", matrix), ("naive", naive)):  # imports first
        cell = cell_of(path, workdir, seed=0)
        experiment = client.ensure_experiment(label)
        parent = client.start_parent_run(experiment, label, {})
        began = time.perf_counter()
        tracker = CellTracker.start(tracking, experiment, parent, cell_id=cell.id, name=cell.name, sweep=label,
                                    axis_values=cell.axis_values, settings=cell.settings.model_dump(mode="json"),
                                    data_fingerprint=cell.settings.data_fingerprint)
        run_cell(cell, CellPlace(cache_dir=workdir / "cache"), tracker)
        tracker.finish()
        seconds[label] = time.perf_counter() - began
    saving = 8 * seconds["naive"] / seconds["matrix"]
    return [check("8 x 8 encodings: naive 64 trainings / ablate's 8 (time)", saving, ">=", 5.0),
            info("  one training with 8 evaluations, s", seconds["matrix"]),
            info("  one training with 1 evaluation, s", seconds["naive"])]


def rerun_and_planning(workdir: Path) -> list[Figure]:
    """6. Re-running a finished sweep of 100 cells decides "nothing to do" without training; planning
    a 10,000-cell grid: expanding and hashing it in-process, and `ablate plan` on it."""
    from ablate.data.sources import source_fingerprint
    from ablate.plan import expand_grid
    from ablate.spec import load_spec

    hundred = {"name": "hundred", "data": {"source": "synthetic", "num_train_tasks": 0, "instances_per_task": 0},
               "model": "copy_demo", "train": {"steps": 0, "batch_size": 8, "learning_rate": 1.0e-3,
                                               "max_source_length": 64, "max_target_length": 8, "encoding": "def"},
               "eval": {"instances_per_task": 2, "max_new_tokens": 4}, "seeds": list(range(100)),
               "resources": {"max_concurrent": 2, "cpus_per_cell": 1}}
    path = write_spec(workdir, hundred)
    first, _ = ablate(["sweep", str(path), "--yes"], workdir)
    again, output = ablate(["sweep", str(path), "--yes"], workdir)
    trained = int(re.search(r"(\d+) trained, (\d+) cached", output).group(1))

    grid = {**variant("grid", seeds=list(range(100))), "axes": {"instances_per_task": list(range(1, 101))}}
    grid_path = write_spec(workdir, grid)
    spec = load_spec(str(grid_path), [], workdir)
    began = time.perf_counter()
    cells = expand_grid(spec, source_fingerprint(spec.data.source, spec.data.synthetic_seed))
    expand = time.perf_counter() - began
    plan, _ = ablate(["plan", str(grid_path)], workdir)
    return [
        check("re-run of a finished 100-cell sweep: wall time, s", again, "<", 10.0),
        check("  cells trained by that re-run", trained, "<=", 0),
        info("  the first run of those 100 evaluation-only cells, s", first),
        check(f"expanding and hashing {len(cells):,} cells, s", expand, "<", 2.0),
        check(f"`ablate plan` on {len(cells):,} cells, s", plan, "<", 5.0),
    ]


def evaluation_and_data(workdir: Path) -> list[Figure]:
    """7. Batched generation against one prompt at a time, and the tokenized-data cache."""
    import torch

    from ablate.data.build import tokenize_dataset
    from ablate.evaluate import generate_predictions
    from ablate.model import build_model

    path = write_spec(workdir, variant("evaluation", seeds=[0], axes={}))
    cell = cell_of(path, workdir, seed=0)
    data = cell_data(cell, workdir / "cache")
    torch.set_num_threads(1)
    model = build_model("t5-tiny", len(data.tokenizer), 0)
    sources = data.test_rows["source"][:120]
    seconds = {}
    for batch_size in (1, cell.settings.eval.batch_size):
        began = time.perf_counter()
        generate_predictions(model, data.tokenizer, sources, max_source_length=64, max_new_tokens=8, num_beams=1,
                             batch_size=batch_size)
        seconds[batch_size] = time.perf_counter() - began
    rows = data.train_data.select_columns(["source", "target"])
    cache = workdir / "fresh-cache"
    timings = []
    for _ in range(2):
        began = time.perf_counter()
        tokenize_dataset(rows, data.tokenizer, "bench", 64, 16, cache)
        timings.append(time.perf_counter() - began)
    batched = cell.settings.eval.batch_size
    return [check(f"generation throughput, batch {batched} / one at a time", seconds[1] / seconds[batched], ">=", 3.0),
            info(f"tokenizing {len(rows)} examples: cached second build / first", timings[1] / timings[0])]


def gpu_sharing(workdir: Path) -> list[Figure]:
    """8. On a GPU machine only: cells per GPU-hour for tiny cells at 0.25 GPU each (4 at once) vs
    a whole GPU each, and the GPU utilisation of a t5-small cell (MLflow's system metrics)."""
    import torch

    if not torch.cuda.is_available():
        return [Figure("cells per GPU-hour, 0.25 GPU per cell / 1 GPU per cell", None, ">= 3", None,
                       "no GPU here: run benchmarks/run_all.py on a GPU machine")]
    phases = {}
    for gpus, at_once in ((1, 4), (0.25, 4)):
        name = f"gpu{str(gpus).replace('.', '_')}"
        spec = variant(name, seeds=[0, 1, 2, 3], axes={}, train={"steps": 200},
                       resources={"gpus_per_cell": gpus, "cpus_per_cell": 1, "max_concurrent": at_once})
        ablate(["sweep", str(write_spec(workdir, spec)), "--yes"], workdir)
        phases[gpus] = parent_metrics(workdir, name)["timing/cells_seconds"]
    small = variant("gpu_small", model="t5-small", seeds=[0], axes={}, train={"steps": 300},
                    resources={"gpus_per_cell": 1, "cpus_per_cell": 2, "max_concurrent": 1})
    ablate(["sweep", str(write_spec(workdir, small)), "--yes"], workdir)
    (run,) = cell_runs(workdir, "gpu_small")
    history = store(workdir).get_metric_history(run.info.run_id, "system/gpu_0_utilization_percentage")
    utilisation = sum(m.value for m in history) / len(history) if history else None
    return [check("cells per GPU-hour, 0.25 GPU per cell / 1 GPU per cell", phases[1] / phases[0.25], ">=", 3.0),
            info("GPU utilisation of a t5-small cell, % (MLflow system metrics)", utilisation)]
