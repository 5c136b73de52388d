"""The `rloo` stage: InstructGPT's third step, reinforcement learning of the policy against the
reward model (TRL's RLOOTrainer: REINFORCE with a leave-one-out baseline, PPO's successor in TRL).

    stages: [sft, {kind: reward_model, steps: 40}, {kind: rloo, steps: 20, beta: 0.05}]

- Policy: the cell's model as the stages before left it (usually SFT), trained in place.
- Reward: the reward model a `reward_model` stage earlier in the list trained (required; checked
  before anything starts), scoring the prompt and the sampled completion as one sequence, tokenized
  as SFT tokenizes it (the completion's own token ids, not a re-tokenized text).
- Prompts: the prompts of the preference pairs (built from the cell's training tasks, or a JSONL
  `source`), tokenized as SFT tokenizes a source (cut to max_source tokens); completions of at
  most max_target tokens and EOS; `num_generations` samples per prompt.
- KL to the reference (`beta`; InstructGPT's per-token KL penalty): the reference is a frozen copy
  of the policy as the stage found it (with LoRA: the adapters disabled); beta 0 needs none.
- Logged per step: the mean reward of the sampled completions, its spread, the KL, the loss and
  the completion length (results.RLOO_SERIES).
- Decoder-only models only: an encoder-decoder model is refused by `check` before anything starts.
- Resumable (ablate.stages.trl_common): every train.checkpoint_every steps the Trainer's own
  checkpoint (policy, optimizer, scheduler, RNG, trainer state), the reward model and the
  reference go into the trial's checkpoint; a killed cell resumes the stage there and ends with
  the uninterrupted cell's numbers (tests/test_stage_kill.py).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ablate.stages.base import StageInput, StageOutput
from ablate.typed import Frozen


class RlooConfig(Frozen):
    """Reinforcement learning (TRL's RLOOTrainer) against the reward model of the reward_model stage before it; decoder-only models."""

    kind: Literal["rloo"] = "rloo"
    learning_rate: float = Field(1e-4, gt=0, le=10, description="AdamW's peak learning rate of this stage")
    steps: int = Field(20, gt=0, le=100_000_000, description="optimizer steps of reinforcement learning")
    batch_size: int = Field(8, gt=0, le=65_536, description="sampled completions per step (a multiple of "
                                                            "num_generations)")
    num_generations: int = Field(4, ge=2, le=1024, description="completions sampled per prompt (RLOO's "
                                                               "leave-one-out baseline needs at least 2)")
    beta: float = Field(0.05, ge=0, le=1000, description="weight of the KL penalty to the reference (the policy "
                                                         "as the stage found it); 0: none")
    temperature: float = Field(1.0, gt=0, le=100, description="sampling temperature of the completions")
    prompts: int = Field(256, gt=0, le=100_000_000, description="prompts to sample from (those of the preference "
                                                                "pairs: the training tasks', or source's)")
    source: str | None = Field(None, min_length=1, description="a JSONL file of {prompt, chosen, rejected} rows "
                                                               "(its prompts are used); null: the training tasks")

    @field_validator("source")
    @classmethod
    def _file_exists(cls, value: str | None) -> str | None:
        from ablate.data.preference import existing_preference_file

        return existing_preference_file(value, "take the prompts of the training tasks")

    @model_validator(mode="after")
    def _whole_groups(self) -> RlooConfig:
        if self.batch_size % self.num_generations:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                             f"({self.num_generations}): each step holds whole groups of completions of a prompt")
        return self


def check(cell, config: RlooConfig) -> list[str]:
    from ablate.stages.dpo import trl_stage_errors

    errors = trl_stage_errors(cell, "rloo", "RLOOTrainer", config.source, 1)
    kinds = [stage.kind for stage in cell.settings.stages]
    position = next((i for i, stage in enumerate(cell.settings.stages) if stage is config), len(kinds))
    if "reward_model" not in kinds[:position]:
        errors.append(f"stages: rloo optimises the policy against a reward model, but no reward_model stage comes "
                      f"before it ({' -> '.join(kinds)}); list one first, e.g. stages: [sft, reward_model, rloo].")
    elif kinds[position - 1] != "reward_model":
        # The reward model is held in memory only: a cell resumed from a checkpoint of a stage in
        # between would skip the reward_model stage and have none.
        errors.append(f"stages: rloo must come right after its reward_model stage ({' -> '.join(kinds)}); "
                      "move the stages in between before reward_model, e.g. [sft, dpo, reward_model, rloo].")
    return errors


def _trainer_class(trl, tokenizer, max_source: int):
    from ablate.data.build import source_ids

    class SourceRLOOTrainer(trl.RLOOTrainer):
        """RLOOTrainer whose prompts are tokenized as SFT tokenizes a source (cut to max_source)."""

        def _tokenize_prompts(self, prompts: list):
            return source_ids(tokenizer, list(prompts), max_source), None, {}

    return SourceRLOOTrainer


def run(given: StageInput, config: RlooConfig) -> StageOutput:
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback

    from ablate import results
    from ablate.data.build import source_ids
    from ablate.errors import AblateError
    from ablate.stages.reward_model import CARRIED_KEY, cell_pairs, reward_model_from, rewards
    from ablate.stages.trl_common import (checkpoint_arguments, import_trl, restore_policy, resumed_history,
                                          state_dict_copy, trainer_callbacks, unpack_checkpoint)
    from ablate.train import DivergedError, TrainResult, autocast_dtype

    trl = import_trl("rloo")
    settings, model, tokenizer = given.settings, given.model, given.tokenizer
    train = settings.train
    resume = given.resume_state
    reward_model = given.carried.get(CARRIED_KEY)
    if reward_model is None and resume is not None:  # the reward_model stage was not run again
        reward_model = reward_model_from(model, tokenizer.pad_token_id, settings.seed)
        reward_model.load_state_dict(resume["reward_model"])
        reward_model.eval()
    if reward_model is None:
        raise AblateError("the rloo stage has no reward model to optimise against.", field="stages",
                          fix="list a reward_model stage before rloo, e.g. stages: [sft, reward_model, rloo].")

    # 1. Prompts: those of the preference pairs, each once, in a seeded order.
    began = time.perf_counter()
    pairs, _ = cell_pairs(given, config.source, config.prompts)
    prompts = list(dict.fromkeys(p.prompt for p in pairs))
    data = Dataset.from_dict({"prompt": prompts})
    data_seconds = time.perf_counter() - began
    given.tracker.log_metrics({results.NUM_RLOO_PROMPTS: len(prompts)})
    pad = tokenizer.pad_token_id

    def reward_model_score(prompts, completions, completion_ids, **kwargs):
        """The reward model's score of prompt + completion, as token ids (no re-tokenized text)."""
        sequences = [[*s, *c] for s, c in zip(source_ids(tokenizer, list(prompts), train.max_source_length),
                                              completion_ids)]
        return rewards(reward_model, sequences, pad)

    # 2. TRL's settings; the reference (beta > 0, no LoRA) is loaded by TRL from a save of the policy as it is now.
    device_type = torch.device(given.device).type
    dtype = autocast_dtype(train.precision, device_type)
    history: dict[str, list[tuple[int, float]]] = {key: [] for key in results.RLOO_SERIES.values()}
    resumed_history(resume, history)
    peft = hasattr(model, "peft_config")
    frozen = config.beta > 0 and not peft  # a reference of its own (with LoRA: the adapters disabled)
    # What a checkpoint of the stage holds besides the Trainer's: the policy as the stage found it
    # (TRL's reference; the policy moves on) and the frozen reward model, each copied once, and only
    # where checkpoints are written.
    kept = {"reward_model": resume["reward_model"], "reference": resume["reference"]} if resume is not None else {}
    if resume is None and given.save_checkpoint is not None and frozen:
        kept["reference"] = state_dict_copy(model)

    def checkpoint_state() -> dict:
        if "reward_model" not in kept:
            kept["reward_model"] = state_dict_copy(reward_model)
        return {"reward_model": kept["reward_model"], "reference": kept.get("reference")}

    callbacks, trained = trainer_callbacks(config.steps, results.RLOO_SERIES, history, given.save_checkpoint,
                                           checkpoint_state)

    named = model.config._name_or_path
    with tempfile.TemporaryDirectory(prefix="ablate-rloo-") as folder:
        if frozen:
            reference = Path(folder) / "reference"
            if resume is not None:  # written from the state it had (the Trainer then loads the resumed policy)
                model.load_state_dict(kept["reference"])
            model.save_pretrained(reference)
            model.config._name_or_path = str(reference)  # where TRL loads its frozen reference from
        args = trl.RLOOConfig(
            output_dir=str(Path(folder) / "out"), max_steps=config.steps, per_device_train_batch_size=config.batch_size,
            num_generations=config.num_generations, beta=config.beta, temperature=config.temperature,
            learning_rate=config.learning_rate, max_completion_length=train.max_target_length + 1,
            lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0, bf16=dtype == torch.bfloat16,
            fp16=dtype == torch.float16, use_cpu=device_type == "cpu", seed=settings.seed, logging_steps=1,
            report_to="none", disable_tqdm=True, gradient_checkpointing=False, dataloader_num_workers=0,
            log_completions=False, **checkpoint_arguments(given.save_checkpoint, train.checkpoint_every))
        try:
            trainer = _trainer_class(trl, tokenizer, train.max_source_length)(
                model=model, reward_funcs=reward_model_score, args=args, train_dataset=data,
                processing_class=tokenizer, callbacks=callbacks)
            trainer.remove_callback(PrinterCallback)
            began = time.perf_counter()
            trainer.train(resume_from_checkpoint=unpack_checkpoint(resume, Path(folder) / "out"))
            seconds = time.perf_counter() - began
        finally:
            model.config._name_or_path = named
            restore_policy(model, peft)
    if any(not math.isfinite(v) for _, v in history[results.RLOO_SERIES["loss"]]):
        raise DivergedError(f"reinforcement learning diverged: the RLOO loss is not finite (learning rate "
                            f"{config.learning_rate}); lower the rloo stage's learning_rate")
    given.tracker.log_series(history)
    given.tracker.set_tags(results.stage_resumed_tags(config.kind, trained["from"], trained["steps"]))
    return StageOutput(TrainResult(steps=config.steps, seconds=seconds,
                                   examples_per_second=trained["steps"] * config.batch_size / max(seconds, 1e-9),
                                   loss_history=history[results.RLOO_SERIES["loss"]]), data_seconds)
