"""One cell of a sweep, as a recipe: build data, build model, train, evaluate, report.

`run_cell` is what a Ray Tune trial runs (see ablate/trial.py); it can also be called directly.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ablate import results
from ablate.baselines import baseline_predictions
from ablate.data.build import build_test_dataset, build_train_dataset, eval_pairs, tokenize_dataset
from ablate.data.clusters import category_to_cluster
from ablate.data.encoding import tokenizer_truncation
from ablate.data.select import select_tasks
from ablate.data.sources import resolve_task_dir
from ablate.data.tasks import TaskLibrary
from ablate.data.tokenizer import task_dir_tokenizer
from ablate.evaluate import generate_predictions, prediction_records, score_rows
from ablate.model import PRESETS, add_lora, build_model, is_baseline, load_pretrained_tokenizer
from ablate.plan import Cell
from ablate.track import CellTracker
from ablate.train import TrainResult, train_model


@dataclass(frozen=True)
class CellPlace:
    """Where a cell runs: its data cache and its device ("cpu", or "cuda" for the GPU Ray assigned it)."""

    cache_dir: Path
    device: str = "cpu"


def run_cell(cell: Cell, place: CellPlace, tracker: CellTracker, *, resume_state: dict | None = None,
             save_checkpoint: Callable | None = None) -> dict[str, float]:
    """Train and evaluate one cell, logging everything to its MLflow child run; returns headline metrics."""
    settings = cell.settings
    data, train = settings.data, settings.train
    tracker.set_tags(runtime_tags(place.device))
    reset_peak_memory(place.device)  # a reused worker has run other cells before this one

    # 1. Data: the cell's tasks (seeded, nested), encoded as Tk-Instruct prompts.
    data_began = time.perf_counter()
    library = TaskLibrary(resolve_task_dir(data.source, data.synthetic_seed, place.cache_dir),
                          index_dir=place.cache_dir / "index", persist_index=True)
    cluster_of = category_to_cluster(settings.cluster_map)
    selection = select_tasks(library, data, settings.seed)
    tracker.log_metrics({f"{results.TASKS_REMOVED_PREFIX}{rule}": count for rule, count in selection.removed})
    tracker.log_text(json.dumps({"train_tasks": selection.train_tasks, "test_tasks": selection.test_tasks}, indent=1),
                     results.TASKS_ARTIFACT)
    pairs = eval_pairs(library, selection.test_tasks, settings.eval.instances_per_task)
    log_datasets(tracker, cell, selection, len(pairs))
    data_seconds = time.perf_counter() - data_began

    # 2. Model: a heuristic baseline needs none; otherwise a preset from config or a pretrained model.
    if is_baseline(settings.model):
        model = tokenizer = truncation = None
        train_result = TrainResult(steps=0, seconds=0.0, examples_per_second=0.0)
    else:
        tokenizer, tokenizer_id = _tokenizer_for(settings.model, library.root, place.cache_dir)
        truncation = tokenizer_truncation(tokenizer, train.max_source_length)
        model = build_model(settings.model, len(tokenizer), settings.seed)
        if train.lora is not None and not settings.untuned:
            model = add_lora(model, train.lora)
        model.to(place.device)
        tracker.log_metrics({results.NUM_PARAMETERS: sum(p.numel() for p in model.parameters()),
                             results.NUM_TRAINABLE_PARAMETERS: sum(p.numel() for p in model.parameters()
                                                                   if p.requires_grad)})

    # 3. Train on the cell's training tasks (an untuned cell evaluates the model as it is).
    if model is not None and settings.untuned:
        train_result = TrainResult(steps=0, seconds=0.0, examples_per_second=0.0)
        tracker.log_metrics({results.NUM_TRAIN_TASKS: 0, results.NUM_TRAIN_EXAMPLES: 0})
    elif model is not None:
        data_began = time.perf_counter()
        train_rows = build_train_dataset(library, selection, data.instances_per_task, train.encoding,
                                         truncation, settings.seed)
        train_data = tokenize_dataset(train_rows, tokenizer, tokenizer_id, train.max_source_length,
                                      train.max_target_length, place.cache_dir,
                                      causal=not model.config.is_encoder_decoder)
        data_seconds += time.perf_counter() - data_began
        tracker.log_metrics({results.NUM_TRAIN_TASKS: len(selection.train_tasks),
                             results.NUM_TRAIN_EXAMPLES: len(train_data)})
        train_result = train_model(model, tokenizer, train_data, train, settings.seed, device=place.device,
                                   resume_state=resume_state, save_checkpoint=save_checkpoint)
        tracker.log_series({results.TRAIN_LOSS: train_result.loss_history})
        if train.save_model:
            log_model(tracker, model, tokenizer)

    # Reading tasks, sampling, encoding and tokenizing: what a larger task directory could slow down.
    tracker.log_metrics({results.DATA_SECONDS: data_seconds})

    # 4. Evaluate every test encoding on the held-out tasks (one training serves them all).
    headline: dict[str, float] = {}
    names: dict[str, str] = {}
    eval_began = time.perf_counter()
    for position, encoding in enumerate(settings.test_encodings):
        rows = build_test_dataset(pairs, encoding, truncation, cluster_of).to_dict()
        if model is None:
            predictions = baseline_predictions(settings.model, pairs)
        else:
            predictions = generate_predictions(model, tokenizer, rows["source"],
                                               max_source_length=train.max_source_length,
                                               max_new_tokens=settings.eval.max_new_tokens,
                                               num_beams=settings.eval.num_beams,
                                               batch_size=settings.eval.batch_size)
        scores = score_rows(rows, predictions)

        # 5. Report: metrics per encoding / category / task / cluster, and the predictions.
        tracker.log_metrics(results.eval_metrics(encoding, scores))
        names.update(results.names_in(scores))
        tracker.log_text("\n".join(json.dumps(r, ensure_ascii=False) for r in prediction_records(rows, predictions)),
                         results.predictions_artifact(encoding))
        if position == 0:  # the first test encoding gives the run's headline numbers
            headline = {m: scores[m] for m in results.METRICS}
    eval_seconds = time.perf_counter() - eval_began
    tracker.log_text(json.dumps(names, indent=1, ensure_ascii=False), results.NAMES_ARTIFACT)
    tracker.log_metrics({**headline, results.TRAIN_SECONDS: train_result.seconds, results.EVAL_SECONDS: eval_seconds,
                         results.EXAMPLES_PER_SECOND: train_result.examples_per_second,
                         results.TRAIN_STEPS: train_result.steps, results.PEAK_MEMORY_MB: peak_memory_mb(place.device)})
    return headline


def _tokenizer_for(model_name: str, task_dir: Path, cache_dir: Path):
    """Presets use the task suite's word-level tokenizer (built once per data source); pretrained
    models use their own (given a pad token when they have none, as many decoder-only models do).
    Returns the tokenizer and an id for the tokenized-data cache."""
    if model_name not in PRESETS:
        tokenizer = load_pretrained_tokenizer(model_name)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer, model_name
    return task_dir_tokenizer(task_dir, cache_dir)


def log_model(tracker: CellTracker, model, tokenizer) -> None:
    """The trained model (a LoRA model: its adapter only) and tokenizer, as the run's model/ artifacts."""
    with tempfile.TemporaryDirectory(prefix="ablate-model-") as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        tracker.log_folder(Path(folder), results.MODEL_ARTIFACT)


def log_datasets(tracker: CellTracker, cell: Cell, selection, num_test_rows: int) -> None:
    """The cell's training and test sets as MLflow dataset inputs (the runs table's Datasets column)."""
    settings = cell.settings
    data = settings.data

    def digest(*parts) -> str:
        return hashlib.sha256(json.dumps([settings.data_fingerprint, *parts]).encode()).hexdigest()[:16]

    source = f"{data.source} (split {data.split})"
    train_rows = len(selection.train_tasks) * data.instances_per_task
    if not settings.untuned:
        tracker.log_dataset(f"train ({len(selection.train_tasks)} tasks)",
                            digest(selection.train_tasks, data.instances_per_task, settings.seed), source,
                            train_rows, "training")
    tracker.log_dataset(f"test ({len(selection.test_tasks)} tasks)",
                        digest(selection.test_tasks, settings.eval.instances_per_task), source, num_test_rows,
                        "evaluation")


def runtime_tags(device: str) -> dict[str, str]:
    """What the cell ran on: device (and GPU name), torch and CUDA versions, host."""
    import socket

    import torch

    tags = {results.DEVICE: device, results.TORCH_VERSION: torch.__version__,
            results.CUDA_VERSION: torch.version.cuda or "none", results.HOST: socket.gethostname()}
    if device.startswith("cuda"):
        tags[results.GPU_NAME] = torch.cuda.get_device_name(torch.device(device))
    return tags


def reset_peak_memory(device: str) -> None:
    """Count the peak memory from now: torch's GPU peak, and on Linux the process's peak RSS."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux 4.0+)
    except OSError:
        pass  # elsewhere the peak is the process's since it started (ru_maxrss)


def peak_memory_mb(device: str) -> float:
    """Peak memory since `reset_peak_memory`: GPU memory allocated by torch on a GPU, else the
    process's peak RSS (VmHWM on Linux, ru_maxrss elsewhere)."""
    import re
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    try:
        return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
