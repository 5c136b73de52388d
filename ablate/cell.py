"""One cell of a sweep, as a recipe: build data, build model, train (each stage), evaluate (each
evaluator), report.

`run_cell` is what a Ray Tune trial runs (see ablate/trial.py); it can also be called directly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ablate import results
from ablate.cell_clock import CellClock
from ablate.data.build import build_test_dataset
from ablate.data.cell_data import open_cell_data
from ablate.data.encoding import tokenizer_truncation
from ablate.data.tokenizer import task_dir_tokenizer
from ablate.evaluators import evaluator_of
from ablate.evaluators.base import EvalInput
from ablate.model import PRESETS, add_lora, build_model, is_baseline, load_pretrained_tokenizer
from ablate.plan import Cell
from ablate.status import RUN_FINISHED
from ablate.stages import stage_of
from ablate.stages.base import StageInput
from ablate.track.cell_run import CellTracker
from ablate.train import TrainResult


@dataclass(frozen=True)
class CellPlace:
    """Where a cell runs: its data cache and its device ("cpu", or "cuda" for the GPU Ray assigned it)."""

    cache_dir: Path
    device: str = "cpu"


@dataclass(frozen=True)
class FoldPoint:
    """A cell evaluated on the way through this cell's training (ablate.fold): when training reaches
    its steps, its own child run is started (`start_run`), scored and finished."""

    cell: Cell
    start_run: Callable[[], CellTracker]


def run_cell(cell: Cell, place: CellPlace, tracker: CellTracker, *, resume_state: dict | None = None,
             save_checkpoint: Callable | None = None, clock: CellClock | None = None,
             fold_points: tuple[FoldPoint, ...] = ()) -> dict[str, float]:
    """Train and evaluate one cell, logging everything to its MLflow child run; returns the
    headline metrics (each evaluator's overall scores on the first test encoding). `clock`
    (ablate.cell_clock) holds where the cell's time went, its trial's start-up included.
    `fold_points`: cells of fewer steps this training passes through, each evaluated and logged
    as its own cell on the way (only a cell with one sft stage trains them)."""
    settings = cell.settings
    clock = clock or CellClock(lambda: tracker.store_seconds)
    tracker.set_tags(runtime_tags(place.device))
    reset_peak_memory(place.device)  # a reused worker has run other cells before this one

    # 1. Data: the cell's tasks (seeded, nested) and its test set.
    with clock.part("data"):
        data = open_cell_data(settings, place.cache_dir)
        log_cell_data(tracker, cell, data)

    # 2. Model: a heuristic baseline needs none; otherwise a preset from config or a pretrained model.
    built = None if is_baseline(settings.model) else build_cell_model(settings, data.library.root, place, tracker, clock)

    # 3. Train: each stage in turn on the model the one before left (an untuned cell trains nothing).
    trained = [TrainResult(steps=0, seconds=0.0, examples_per_second=0.0)]
    skipped_steps = 0
    if built is not None and settings.untuned:
        tracker.log_metrics({results.NUM_TRAIN_TASKS: 0, results.NUM_TRAIN_EXAMPLES: 0})
    elif built is not None:
        trained = []
        checkpoints = clock.timed("checkpoints", save_checkpoint) if save_checkpoint is not None else None
        offset = (resume_state or {}).get(STAGE_OFFSET_KEY, 0)  # steps of the stages before (checkpoints count on)
        skipped_steps = offset  # of the stages finished before the checkpoint resumed from (not run again)
        carried: dict = {}  # what a stage leaves for the later ones (StageInput.carried)
        for position, stage in enumerate(settings.stages):
            if resume_state is not None and position < resume_state.get(STAGE_KEY, 0):
                continue  # finished before the checkpoint: its result is in the resumed weights
            pauses = {}
            if stage.kind == "sft":  # folded cells: scored as the training passes their steps
                pauses = {p.cell.settings.train.steps: functools.partial(_score_fold_point, p, built, data, place, clock)
                          for p in fold_points}
            with clock.part("train"):
                output = stage_of(stage.kind).run(StageInput(
                    built.model, built.tokenizer, built.tokenizer_id, built.truncation, settings, data, tracker,
                    place.cache_dir, place.device, _stage_state(resume_state, position),
                    _stage_checkpoints(checkpoints, position, offset), carried, pauses), stage)
            clock.move("train", "data", output.data_seconds)  # each stage builds its own data first
            trained.append(output.train)
            offset += output.train.steps
        if settings.train.save_model:
            log_model(tracker, built.model, built.tokenizer)

    # 4. Evaluate: every evaluator on every test encoding of the held-out tasks (one training serves them all).
    with clock.part("eval"):
        headline, own = evaluate_cell(settings, built, data, place, tracker)
    tracker.log_metrics({**headline, **cell_times(clock),
                         results.DATA_SECONDS: clock.seconds["data"],
                         results.TRAIN_SECONDS: sum(t.seconds for t in trained),
                         results.EVAL_SECONDS: clock.seconds["eval"],
                         results.EXAMPLES_PER_SECOND: trained[0].examples_per_second,
                         results.TRAIN_STEPS: skipped_steps + sum(t.steps for t in trained),
                         results.PEAK_MEMORY_MB: peak_memory_mb(place.device)})
    return {**headline, **own}


def log_cell_data(tracker: CellTracker, cell: Cell, data) -> None:
    """The cell's task selection (what each rule removed, the tasks it trains and tests on) and its datasets."""
    tracker.log_metrics({f"{results.TASKS_REMOVED_PREFIX}{rule}": count for rule, count in data.selection.removed})
    tracker.log_text(json.dumps({"train_tasks": data.selection.train_tasks,
                                 "test_tasks": data.selection.test_tasks}, indent=1), results.TASKS_ARTIFACT)
    log_datasets(tracker, cell, data.selection, len(data.test_pairs))


def evaluate_cell(settings, built: "BuiltModel | None", data, place: CellPlace,
                  tracker: CellTracker) -> tuple[dict[str, float], dict[str, float]]:
    """Every evaluator on every test encoding, logged to `tracker`: (the headline scores, the
    metrics under evaluators' own keys)."""
    headline: dict[str, float] = {}
    names: dict[str, str] = {}
    own: dict[str, float] = {}  # metrics logged under an evaluator's own keys, returned with the headline
    truncation = built.truncation if built is not None else None
    for position, encoding in enumerate(settings.test_encodings):
        rows = build_test_dataset(data.test_pairs, encoding, truncation, data.cluster_of,
                                  data.test_options if settings.eval.options_in_prompt else None).to_dict()
        for config in settings.eval.evaluators:
            evaluator = evaluator_of(config.kind)
            output = evaluator.evaluate(EvalInput(
                built.model if built else None, built.tokenizer if built else None, settings.model,
                data.test_pairs, rows, encoding, settings.eval, settings.train.max_source_length,
                settings.train.max_target_length, data.test_options, place.device), config)

            # Report: metrics per encoding / category / task / cluster, and the per-instance records.
            if output.metrics:  # under the evaluator's own keys (lm_eval/<task>/<metric>)
                tracker.log_metrics(output.metrics)
                own.update(output.metrics)
            for path, text in output.artifacts.items():
                tracker.log_text(text, path)
            if output.unscored:
                tracker.log_text(json.dumps(output.unscored, indent=1),
                                 results.unscored_artifact(encoding, evaluator.kind))
            if not output.scores:
                continue
            tracker.log_metrics(results.eval_metrics(encoding, output.scores, evaluator.metric_names))
            names.update(results.names_in(output.scores))
            tracker.log_text("\n".join(json.dumps(r, ensure_ascii=False) for r in output.records),
                             results.predictions_artifact(encoding, evaluator.kind))
            if position == 0:  # the first test encoding gives the run's headline numbers
                headline.update({m: output.scores[m] for m in evaluator.metric_names})
    tracker.log_text(json.dumps(names, indent=1, ensure_ascii=False), results.NAMES_ARTIFACT)
    return headline, own


def _score_fold_point(point: FoldPoint, built: "BuiltModel", data, place: CellPlace, clock: CellClock,
                      loss_history: list, stage_logged: dict) -> None:
    """A folded cell, when the training reaches its steps: its own run, with what it would have
    logged trained alone (data, parameters, loss curve, scores); the time goes to this cell's eval."""
    with clock.part("eval"):
        tracker = point.start_run()
        tracker.set_tags(runtime_tags(place.device))
        log_cell_data(tracker, point.cell, data)
        tracker.log_metrics({**parameter_counts(built.model), **stage_logged})
        tracker.log_series({results.TRAIN_LOSS: loss_history})
        if point.cell.settings.train.save_model:
            log_model(tracker, built.model, built.tokenizer)
        headline, _ = evaluate_cell(point.cell.settings, built, data, place, tracker)
        tracker.log_metrics({**headline, results.TRAIN_STEPS: point.cell.settings.train.steps})
        tracker.finish(RUN_FINISHED)


def cell_times(clock: CellClock) -> dict[str, float]:
    """The parts of the cell's wall time as metrics (`time/<part>_seconds`)."""
    return {results.cell_time_key(part): seconds for part, seconds in clock.seconds.items()}


STAGE_KEY = "stage"  # in a checkpoint's training state: the position of the stage it belongs to
STAGE_OFFSET_KEY = "stage_offset"  # ... and the steps of the stages before it


def _stage_state(resume_state: dict | None, position: int) -> dict | None:
    """The checkpointed state of the stage at `position`, if the checkpoint was made in it."""
    if resume_state is None or resume_state.get(STAGE_KEY, 0) != position:
        return None
    return resume_state


def _stage_checkpoints(save_checkpoint: Callable | None, position: int, offset: int = 0) -> Callable | None:
    """The trial's checkpoint callback, with each state marked with its stage. A stage counts its own
    steps; the checkpoint's step counts on from the stages before (`offset`), so a later stage's
    checkpoints are the more advanced ones (ablate.checkpoint.latest_checkpoint)."""
    if save_checkpoint is None:
        return None
    return lambda step, make_state: save_checkpoint(
        offset + step, lambda: {**make_state(), STAGE_KEY: position, STAGE_OFFSET_KEY: offset})


@dataclass
class BuiltModel:
    model: Any
    tokenizer: Any
    tokenizer_id: str
    truncation: Any


def build_cell_model(settings, task_dir: Path, place: CellPlace, tracker: CellTracker,
                     clock: CellClock | None = None) -> BuiltModel:
    """The cell's model on its device (LoRA adapters added where the cell trains them), its
    tokenizer and source-truncation rule; its parameter counts logged."""
    clock = clock or CellClock(lambda: tracker.store_seconds)
    with clock.part("tokenizer"):
        tokenizer, tokenizer_id = _tokenizer_for(settings.model, task_dir, place.cache_dir)
        truncation = tokenizer_truncation(tokenizer, settings.train.max_source_length)
    with clock.part("model"):
        model = build_model(settings.model, len(tokenizer), settings.seed)
        if settings.train.lora is not None and not settings.untuned:
            model = add_lora(model, settings.train.lora)
        model.to(place.device)
    tracker.log_metrics(parameter_counts(model))
    return BuiltModel(model, tokenizer, tokenizer_id, truncation)


def parameter_counts(model) -> dict[str, int]:
    return {results.NUM_PARAMETERS: sum(p.numel() for p in model.parameters()),
            results.NUM_TRAINABLE_PARAMETERS: sum(p.numel() for p in model.parameters() if p.requires_grad)}


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
