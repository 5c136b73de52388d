"""Fine-tuning: a plain, resumable PyTorch loop over a tokenized HF dataset, on a CPU or a GPU.

Batches are a deterministic function of (seed, step), so a run resumed from a checkpoint sees
the same data as an uninterrupted one. An optimizer step takes `batch_size x
gradient_accumulation_steps` examples in micro-batches of `batch_size`; each micro-batch's loss is
weighted by its share of the step's target tokens, so accumulating 2 x 8 gives the gradient of one
batch of 16. Mixed precision uses torch.autocast (bf16, or fp16 with a grad scaler).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ablate.spec import TrainSpec


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    steps: int
    seconds: float
    examples_per_second: float
    loss_history: list[tuple[int, float]] = field(default_factory=list)


def examples_per_step(train: TrainSpec) -> int:
    return train.batch_size * train.gradient_accumulation_steps


def total_steps(train: TrainSpec, num_examples: int) -> int:
    if train.steps is not None:
        return train.steps
    return max(1, math.ceil(train.epochs * num_examples / examples_per_step(train)))


def autocast_dtype(precision: str, device_type: str):
    """The autocast dtype of a precision setting on a device ("cpu" or "cuda"); None: fp32."""
    import torch

    if precision == "auto":
        return torch.bfloat16 if device_type == "cuda" and torch.cuda.is_bf16_supported() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _batch_indices(step: int, num_examples: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the examples in optimizer step `step` (0-based): epoch-wise seeded permutations."""
    import torch

    per_epoch = max(1, math.ceil(num_examples / batch_size))
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_examples, generator=generator).tolist()
    return order[position * batch_size:(position + 1) * batch_size]


def _target_tokens(rows: list[dict]) -> int:
    return sum(sum(label != -100 for label in row["labels"]) for row in rows)


def _rows(features, indices: list[int]) -> list[dict]:
    """The examples at `indices`, read from the Arrow table in one call (not one call per row)."""
    columns = features[indices]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _fused_adamw(parameters, device_type: str) -> bool | None:
    """True where AdamW has a fused kernel for these parameters (CUDA; CPU from torch 2.4), else
    None (torch's default implementation)."""
    import torch

    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    device_ok = device_type == "cuda" or (device_type == "cpu" and version >= (2, 4))
    return True if device_ok and all(p.dtype.is_floating_point for p in parameters) else None


def _rng_state() -> dict[str, Any]:
    """The generators dropout draws from (CPU, and every CUDA device when there is one): saved with
    a checkpoint, so a resumed cell draws the masks the uninterrupted one would have."""
    import torch

    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train_model(model, tokenizer, dataset, train: TrainSpec, seed: int, *, device: str = "cpu",
                resume_state: dict | None = None,
                save_checkpoint: Callable[[int, Callable[[], dict]], None] | None = None,
                pauses: Mapping[int, Callable[[list[tuple[int, float]]], None]] | None = None) -> TrainResult:
    """Train `model` (already on `device`) in place on a tokenized dataset (input_ids, attention_mask, labels).

    `save_checkpoint(step, make_state)` is called every `train.checkpoint_every` steps;
    `resume_state` (a state made by `make_state`) continues an interrupted run. `pauses[step](loss_history)`
    is called after that optimizer step (before the last), with the model in eval mode and the loss
    history a training of that many steps would have logged (ablate.fold evaluates there); the
    training then goes on as if it had not paused (its generators restored).
    """
    import torch
    from transformers import DataCollatorForSeq2Seq, get_scheduler

    steps = total_steps(train, len(dataset))
    device_type = torch.device(device).type
    dtype = autocast_dtype(train.precision, device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=dtype == torch.float16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel (one pass over all parameters) where torch has it for this device: HF Trainer's
    # default too, and 5% of a small model's step on a CPU.
    optimizer = torch.optim.AdamW(trainable, lr=train.learning_rate, weight_decay=train.weight_decay,
                                  fused=_fused_adamw(trainable, device_type))
    scheduler = get_scheduler(train.schedule, optimizer, num_warmup_steps=train.warmup_steps,
                              num_training_steps=steps)
    tokenizer.padding_side = "right"
    seq2seq = model.config.is_encoder_decoder
    # For T5 the collator also makes decoder_input_ids from the labels.
    collate = DataCollatorForSeq2Seq(tokenizer, model=model if seq2seq else None, label_pad_token_id=-100)
    features = dataset.select_columns(["input_ids", "attention_mask", "labels"])
    history: list[tuple[int, float]] = []
    running: list[float] = []  # step losses since the last logged point
    start = 0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
        start, history = resume_state["step"], list(resume_state["loss_history"])
        running = list(resume_state["running_losses"])
        if "rng" in resume_state:  # checkpoints written before the generators were saved have none
            _set_rng_state(resume_state["rng"])

    def make_state() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "step": step + 1, "loss_history": history, "running_losses": running,
                "rng": _rng_state()}

    model.train()
    began, examples, paused = time.perf_counter(), 0, 0.0
    for step in range(start, steps):
        indices = _batch_indices(step, len(features), examples_per_step(train), seed)
        rows = _rows(features, indices)
        micro_batches = [rows[i:i + train.batch_size] for i in range(0, len(rows), train.batch_size)]
        step_tokens = _target_tokens(rows) if len(micro_batches) > 1 else None
        step_loss = 0.0
        for chunk in micro_batches:
            batch = collate(chunk).to(device)
            with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = model(**batch).loss
            if step_tokens is not None:  # this micro-batch's share of the step's target tokens
                loss = loss * (_target_tokens(chunk) / step_tokens)
            if not torch.isfinite(loss):
                raise DivergedError(f"training diverged: loss is {loss.item()} at step {step + 1} "
                                    f"(learning rate {train.learning_rate}); lower train.learning_rate")
            scaler.scale(loss).backward()
            step_loss += loss.item()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        examples += len(indices)
        running.append(step_loss)
        if (step + 1) % train.log_every == 0 or step + 1 == steps:
            history.append((step + 1, sum(running) / len(running)))
            running = []
        if pauses and step + 1 in pauses and step + 1 < steps:
            pause_began = time.perf_counter()
            rng = _rng_state()
            model.eval()
            pauses[step + 1](history + ([(step + 1, sum(running) / len(running))] if running else []))
            model.train()
            tokenizer.padding_side = "right"  # an evaluation pads decoder-only prompts on the left
            _set_rng_state(rng)
            paused += time.perf_counter() - pause_began
        if save_checkpoint is not None and (step + 1) % train.checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(step + 1, make_state)
    seconds = time.perf_counter() - began - paused  # the pauses' evaluations are not training
    return TrainResult(steps=steps, seconds=seconds, examples_per_second=examples / max(seconds, 1e-9),
                       loss_history=history)
