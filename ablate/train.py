"""Fine-tuning: a plain, resumable PyTorch loop over a tokenized HF dataset.

Batches are a deterministic function of (seed, step), so a run resumed from a checkpoint sees
the same data as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ablate.spec import TrainSpec


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    steps: int
    seconds: float
    examples_per_second: float
    loss_history: list[tuple[int, float]] = field(default_factory=list)


def total_steps(train: TrainSpec, num_examples: int) -> int:
    if train.steps is not None:
        return train.steps
    return max(1, math.ceil(train.epochs * num_examples / train.batch_size))


def _batch_indices(step: int, num_examples: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the examples in optimizer step `step` (0-based): epoch-wise seeded permutations."""
    import torch

    per_epoch = max(1, math.ceil(num_examples / batch_size))
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_examples, generator=generator).tolist()
    return order[position * batch_size:(position + 1) * batch_size]


def train_model(model, tokenizer, dataset, train: TrainSpec, seed: int, *,
                resume_state: dict | None = None,
                save_checkpoint: Callable[[int, Callable[[], dict]], None] | None = None) -> TrainResult:
    """Train `model` in place on a tokenized dataset (columns input_ids, attention_mask, labels).

    `save_checkpoint(step, make_state)` is called every `train.checkpoint_every` steps;
    `resume_state` (a state made by `make_state`) continues an interrupted run.
    """
    import torch
    from transformers import DataCollatorForSeq2Seq, get_scheduler

    steps = total_steps(train, len(dataset))
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.learning_rate, weight_decay=train.weight_decay)
    scheduler = get_scheduler(train.schedule, optimizer, num_warmup_steps=train.warmup_steps,
                              num_training_steps=steps)
    collate = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    features = dataset.select_columns(["input_ids", "attention_mask", "labels"])
    history: list[tuple[int, float]] = []
    start = 0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        start, history = resume_state["step"], list(resume_state["loss_history"])

    def make_state() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step + 1, "loss_history": history}

    model.train()
    began, examples, running = time.perf_counter(), 0, []
    for step in range(start, steps):
        indices = _batch_indices(step, len(features), train.batch_size, seed)
        batch = collate([features[i] for i in indices])
        loss = model(**batch).loss
        if not torch.isfinite(loss):
            raise DivergedError(f"training diverged: loss is {loss.item()} at step {step + 1} "
                                f"(learning rate {train.learning_rate}); lower train.learning_rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        examples += len(indices)
        running.append(loss.item())
        if (step + 1) % train.log_every == 0 or step + 1 == steps:
            history.append((step + 1, sum(running) / len(running)))
            running = []
        if save_checkpoint is not None and (step + 1) % train.checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(step + 1, make_state)
    seconds = time.perf_counter() - began
    return TrainResult(steps=steps, seconds=seconds, examples_per_second=examples / max(seconds, 1e-9),
                       loss_history=history)
