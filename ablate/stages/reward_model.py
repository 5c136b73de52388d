"""The `reward_model` stage: InstructGPT's second step, a reward model learnt from comparisons
(TRL's RewardTrainer), for an `rloo` stage after it to optimise the policy against.

    stages: [sft, {kind: reward_model, steps: 40, pairs: 256}, {kind: rloo, steps: 20}]

- Model: a sequence-classification head (one output: the reward) on a copy of the backbone of the
  model the stages before left (the SFT model; with LoRA, its merged copy). The policy itself is
  not changed by this stage; the reward model is left for the stages after it (`StageInput.carried`)
  and is not part of the cell's evaluated model.
- Pairs: as the dpo stage's (ablate/data/preference.py: built from the cell's training tasks, or
  a JSONL `source`), each side tokenized exactly as SFT tokenizes a decoder-only example: the
  source cut to max_source tokens, the answer cut to max_target tokens, then EOS. The reward is
  read at the last token.
- Logged per step: TRL's loss, accuracy (chosen scored above rejected) and margin
  (results.REWARD_SERIES); after the last step, the accuracy and margin on held-out pairs from the
  test tasks (results.REWARD_HELD_OUT_ACCURACY / _MARGIN).
- Decoder-only models only (the head sits on the causal model's backbone): an encoder-decoder
  model is refused by `check` before anything starts.
- Resumable (ablate.stages.trl_common): every train.checkpoint_every steps the Trainer's own
  checkpoint (the reward model, optimizer, scheduler, RNG, trainer state) and the policy as the
  stages before left it go into the trial's checkpoint; a killed cell resumes the stage there and
  ends with the uninterrupted cell's numbers (tests/test_stage_kill.py).
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from typing import Literal

from pydantic import Field, field_validator

from ablate.stages.base import StageInput, StageOutput
from ablate.typed import Frozen

CARRIED_KEY = "reward_model"  # in StageInput.carried: the trained reward model, for the rloo stage


class RewardModelConfig(Frozen):
    """A reward model (TRL's RewardTrainer) trained on preference pairs, for a later rloo stage; decoder-only models."""

    kind: Literal["reward_model"] = "reward_model"
    learning_rate: float = Field(1e-3, gt=0, le=10, description="AdamW's peak learning rate of this stage")
    steps: int = Field(40, gt=0, le=100_000_000, description="optimizer steps of reward-model training")
    batch_size: int = Field(8, gt=0, le=65_536, description="preference pairs per step")
    pairs: int = Field(256, gt=0, le=100_000_000, description="preference pairs to train on (spread evenly over "
                                                              "the training tasks, or sampled from source)")
    schedule: Literal["constant", "linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="this stage's learning rate over its steps (transformers' schedulers)")
    warmup_steps: int = Field(0, ge=0, le=100_000_000, description="steps of linear warm-up of this stage")
    source: str | None = Field(None, min_length=1, description="a JSONL file of {prompt, chosen, rejected, task?, "
                                                               "category?} rows; null: pairs built from the "
                                                               "cell's training tasks")

    @field_validator("source")
    @classmethod
    def _file_exists(cls, value: str | None) -> str | None:
        from ablate.data.preference import existing_preference_file

        return existing_preference_file(value, "build pairs from the training tasks")


def check(cell, config: RewardModelConfig) -> list[str]:
    from ablate.stages.dpo import trl_stage_errors

    return trl_stage_errors(cell, "reward_model", "RewardTrainer", config.source, config.pairs)


def cell_pairs(given: StageInput, source: str | None, count: int):
    """(training pairs, held-out pairs) of a preference stage: from `source` or the cell's training
    tasks; held out: one per test instance (its source in the first test encoding)."""
    from ablate.data.encoding import build_sources, parse_encoding
    from ablate.data.preference import (
        pairs_from_tasks,
        pairs_from_test,
        read_pairs,
        sample_pairs,
    )

    settings = given.settings
    if source is not None:
        pairs = sample_pairs(read_pairs(source), count, settings.seed)
    else:
        pairs = pairs_from_tasks(given.data.library, given.data.selection.train_tasks, count,
                                 settings.train.encoding, given.truncation, settings.seed)
    encoding = parse_encoding(settings.test_encodings[0])
    held_out = pairs_from_test(given.data.test_pairs, build_sources(given.data.test_pairs, encoding, given.truncation),
                               seed=0)
    return pairs, held_out


def sequence_ids(tokenizer, prompts: list[str], answers: list[str], max_source: int, max_target: int):
    """Whole decoder-only sequences as SFT builds them (ablate.data.build.causal_example): the
    source cut to max_source tokens, the answer to max_target tokens, then EOS."""
    from ablate.data.build import source_ids

    sources = source_ids(tokenizer, prompts, max_source)
    cut = tokenizer(answers, add_special_tokens=False, max_length=max_target, truncation=True)["input_ids"]
    return [[*s, *a, tokenizer.eos_token_id] for s, a in zip(sources, cut)]


def tokenized_pairs(tokenizer, pairs, max_source: int, max_target: int):
    """TRL's pretokenized reward columns: chosen_ids and rejected_ids, whole sequences."""
    from datasets import Dataset

    prompts = [p.prompt for p in pairs]
    return Dataset.from_dict({
        "chosen_ids": sequence_ids(tokenizer, prompts, [p.chosen for p in pairs], max_source, max_target),
        "rejected_ids": sequence_ids(tokenizer, prompts, [p.rejected for p in pairs], max_source, max_target)})


def reward_model_from(policy, pad_token_id: int, seed: int):
    """A one-output sequence-classification model on a copy of `policy`'s backbone (a LoRA policy:
    its adapters merged into the copy); its head seeded."""
    import torch
    from transformers import AutoModelForSequenceClassification

    source = policy
    if hasattr(policy, "peft_config"):
        source = copy.deepcopy(policy).merge_and_unload()
    config = copy.deepcopy(source.config)
    config.num_labels, config.pad_token_id = 1, pad_token_id
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    model.base_model.load_state_dict(source.base_model.state_dict(), strict=True)
    return model.to(next(policy.parameters()).device)


def rewards(reward_model, sequences: list[list[int]], pad_token_id: int, batch_size: int = 64) -> list[float]:
    """The reward model's score of each whole sequence (read at its last token)."""
    import torch

    device = next(reward_model.parameters()).device
    scores: list[float] = []
    was_training = reward_model.training
    reward_model.eval()
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start:start + batch_size]
            width = max(len(s) for s in batch)
            ids = torch.tensor([s + [pad_token_id] * (width - len(s)) for s in batch], device=device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=device)
            scores += reward_model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
    reward_model.train(was_training)
    return scores


def ranking_accuracy(reward_model, data, pad_token_id: int) -> float:
    """The share of pairs (tokenized_pairs) whose chosen side the model scores above the rejected, in %."""
    chosen = rewards(reward_model, data["chosen_ids"], pad_token_id)
    rejected = rewards(reward_model, data["rejected_ids"], pad_token_id)
    return 100.0 * sum(c > r for c, r in zip(chosen, rejected)) / max(len(chosen), 1)


def run(given: StageInput, config: RewardModelConfig) -> StageOutput:
    import torch
    from transformers import PrinterCallback

    from ablate import results
    from ablate.stages.trl_common import (checkpoint_arguments, import_trl, resumed_history, state_dict_copy,
                                          trainer_callbacks, unpack_checkpoint)
    from ablate.train import DivergedError, TrainResult, autocast_dtype

    trl = import_trl("reward_model")
    settings, tokenizer = given.settings, given.tokenizer
    train = settings.train
    resume = given.resume_state
    if resume is not None:  # the stages before were not run again: the policy they left is in the checkpoint
        given.model.load_state_dict(resume["policy"])

    # 1. Pairs, whole sequences as SFT builds them.
    began = time.perf_counter()
    pairs, held_out = cell_pairs(given, config.source, config.pairs)
    lengths = (train.max_source_length, train.max_target_length)
    train_data, held_out_data = tokenized_pairs(tokenizer, pairs, *lengths), tokenized_pairs(tokenizer, held_out,
                                                                                              *lengths)
    data_seconds = time.perf_counter() - began
    given.tracker.log_metrics({results.NUM_REWARD_PAIRS: len(pairs)})

    # 2. The reward model on the policy's backbone; TRL's settings with the SFT stage's precision and device.
    model = reward_model_from(given.model, tokenizer.pad_token_id, settings.seed)
    device_type = torch.device(given.device).type
    dtype = autocast_dtype(train.precision, device_type)
    history: dict[str, list[tuple[int, float]]] = {key: [] for key in results.REWARD_SERIES.values()}
    resumed_history(resume, history)
    callbacks, trained = trainer_callbacks(config.steps, results.REWARD_SERIES, history, given.save_checkpoint,
                                           lambda: {"policy": state_dict_copy(given.model)})

    with tempfile.TemporaryDirectory(prefix="ablate-reward-") as folder:
        args = trl.RewardConfig(
            output_dir=folder, max_steps=config.steps, per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=settings.eval.batch_size, learning_rate=config.learning_rate,
            lr_scheduler_type=config.schedule, warmup_steps=config.warmup_steps, weight_decay=0.0, max_grad_norm=1.0,
            bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16, use_cpu=device_type == "cpu",
            seed=settings.seed, logging_steps=1, report_to="none", disable_tqdm=True, gradient_checkpointing=False,
            max_length=sum(lengths) + 1, dataloader_num_workers=0,
            **checkpoint_arguments(given.save_checkpoint, train.checkpoint_every))
        trainer = trl.RewardTrainer(model=model, args=args, train_dataset=train_data, processing_class=tokenizer,
                                    callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)
        began = time.perf_counter()
        trainer.train(resume_from_checkpoint=unpack_checkpoint(resume, folder))
        seconds = time.perf_counter() - began
    if any(not math.isfinite(v) for _, v in history[results.REWARD_LOSS]):
        raise DivergedError(f"reward-model training diverged: its loss is not finite (learning rate "
                            f"{config.learning_rate}); lower the reward_model stage's learning_rate")
    model.eval()
    given.tracker.log_series(history)
    given.tracker.set_tags(results.stage_resumed_tags(config.kind, trained["from"], trained["steps"]))
    if len(held_out_data):
        chosen = rewards(model, held_out_data["chosen_ids"], tokenizer.pad_token_id)
        rejected = rewards(model, held_out_data["rejected_ids"], tokenizer.pad_token_id)
        given.tracker.log_metrics({
            results.REWARD_HELD_OUT_ACCURACY: 100.0 * sum(c > r for c, r in zip(chosen, rejected)) / len(chosen),
            results.REWARD_HELD_OUT_MARGIN: sum(c - r for c, r in zip(chosen, rejected)) / len(chosen)})
    given.carried[CARRIED_KEY] = model
    return StageOutput(TrainResult(steps=config.steps, seconds=seconds,
                                   examples_per_second=trained["steps"] * config.batch_size / max(seconds, 1e-9),
                                   loss_history=history[results.REWARD_LOSS]), data_seconds)
