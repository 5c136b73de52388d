"""The `dpo` stage: direct preference optimisation (TRL's DPOTrainer) on the model the stages before
left, usually `sft`: InstructGPT's second and third steps in one, as most recipes run them now.

    stages: [sft, {kind: dpo, beta: 0.1, steps: 40, pairs: 256, sft_mix: 0.5}]

- Policy: the cell's model as SFT left it. Reference: a frozen copy of it (with LoRA, TRL's own
  "ref" adapter: a frozen copy of the SFT adapter on the shared base, removed after the stage).
- Pairs: built from the cell's training tasks (ablate/data/preference.py: chosen = the reference,
  rejected = another instance's answer of the task; the prompt is the Tk-Instruct source SFT
  trains on, tokenized exactly as SFT tokenizes it), or read from a JSONL `source`.
- `sft_mix`: InstructGPT's ptx idea through TRL's own option: `loss_type: [<loss_type>, sft]`
  with `loss_weights: [1, sft_mix]`, TRL's supervised (NLL) loss on the chosen answers, which
  for pairs built from the training tasks are the instruction mixture's targets.
- Precision and device as the SFT stage (train.precision; auto: bf16 on a GPU that has it, else
  fp32). Decoder-only models only (TRL 1.x's DPOTrainer is causal-LM only): an encoder-decoder
  model is refused by `check` before anything starts.
- Logged per step: TRL's loss, reward margins, accuracies, chosen and rejected rewards
  (results.DPO_SERIES); after the last step, the implicit reward (policy vs reference log-prob
  ratios) on held-out pairs from the test tasks (results.DPO_HELD_OUT_ACCURACY / _MARGIN).
- Resumable: every train.checkpoint_every steps the Trainer's own checkpoint (model, optimizer,
  scheduler, RNG, trainer state) and the reference weights go into the trial's checkpoint; a
  killed cell resumes the stage with `Trainer.train(resume_from_checkpoint=...)`; the stage tags the
  run with the step its Trainer resumed from and the steps it trained (results.stage_resumed_tags;
  tests/test_stage_kill.py kills a real sweep mid-DPO and gets the uninterrupted cell's numbers).
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from ablate.stages.base import StageInput, StageOutput
from ablate.stages.trl_common import INSTALL, REFERENCE_ADAPTER
from ablate.typed import Frozen

LOSS_TYPES = Literal["sigmoid", "hinge", "ipo", "robust", "nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
                     "apo_zero", "apo_down", "discopop", "sigmoid_norm"]


class DpoConfig(Frozen):
    """Direct preference optimisation (TRL's DPOTrainer) on preference pairs, after sft; decoder-only models."""

    kind: Literal["dpo"] = "dpo"
    beta: float = Field(0.1, gt=0, le=1000, description="deviation from the reference: higher keeps the policy "
                                                        "closer (DPO's beta; TRL's default 0.1)")
    loss_type: LOSS_TYPES = Field("sigmoid", description="TRL's preference loss (sigmoid: the DPO paper's)")
    learning_rate: float = Field(1e-4, gt=0, le=10, description="AdamW's peak learning rate of this stage")
    steps: int = Field(20, gt=0, le=100_000_000, description="optimizer steps of preference tuning")
    batch_size: int = Field(8, gt=0, le=65_536, description="preference pairs per step")
    pairs: int = Field(256, gt=0, le=100_000_000, description="preference pairs to train on (spread evenly over "
                                                              "the training tasks, or sampled from source)")
    sft_mix: float = Field(0.0, ge=0, le=1000, description="weight of a supervised loss on the chosen answers "
                                                           "(TRL's 'sft' loss type; InstructGPT's ptx idea); 0: none")
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


def check(cell, config: DpoConfig) -> list[str]:
    """Errors before anything starts: TRL missing, an encoder-decoder model, a bad or short file."""
    return trl_stage_errors(cell, "dpo", "DPOTrainer", config.source, config.pairs)


def trl_stage_errors(cell, kind: str, trainer: str, source: str | None, pairs: int) -> list[str]:
    """What a stage on TRL's `trainer` over preference pairs needs (dpo, reward_model, rloo): TRL,
    a decoder-only model, and a preference file (when given) that holds `pairs` rows."""
    from ablate.errors import AblateError
    from ablate.model import is_baseline, model_kind

    errors = []
    try:
        import trl  # noqa: F401
    except ImportError:
        errors.append(f"stages: the {kind} stage needs TRL, which is not installed; install it with {INSTALL} "
                      "(or pip install 'trl>=1.16,<2').")
    model = cell.settings.model
    if is_baseline(model):
        errors.append(f"stages: {kind} trains a model; '{model}' is a heuristic baseline.")
    else:
        try:
            model_type = model_kind(model)
        except AblateError as exc:
            model_type = None
            errors.append(exc.as_item())
        if model_type == "seq2seq":
            errors.append(f"stages: {kind} needs a decoder-only model (TRL's {trainer} trains causal language models "
                          f"only); '{model}' is an encoder-decoder model. Use a llama preset (e.g. llama-tiny) or a "
                          f"decoder-only pretrained model, or leave {kind} out of stages.")
    if source is not None:
        from ablate.data.preference import read_pairs

        try:
            rows = len(read_pairs(source))
        except AblateError as exc:
            errors.append(f"stages: {exc.as_item()}")
        else:
            if rows < pairs:
                errors.append(f"stages: {kind} asks for {pairs} pairs, but {source} holds {rows or 'no'} pair(s); "
                              "lower pairs or add rows.")
    return errors


def _tokenized(tokenizer, pairs, max_source: int, max_target: int):
    """TRL's tokenized preference columns, made exactly as SFT makes a decoder-only example
    (ablate.data.build.causal_example): the source cut to max_source tokens, each answer cut to
    max_target tokens, then EOS."""
    from datasets import Dataset

    from ablate.data.build import source_ids

    prompts = source_ids(tokenizer, [p.prompt for p in pairs], max_source)

    def answers(texts):
        cut = tokenizer(texts, add_special_tokens=False, max_length=max_target, truncation=True)["input_ids"]
        return [[*ids, tokenizer.eos_token_id] for ids in cut]

    return Dataset.from_dict({"prompt_ids": prompts, "chosen_ids": answers([p.chosen for p in pairs]),
                              "rejected_ids": answers([p.rejected for p in pairs])})


def _trainer_class(trl):
    class PretokenizedDPOTrainer(trl.DPOTrainer):
        """DPOTrainer on pairs tokenized by ablate (TRL tokenizes prompt + answer as one text, which
        for a word-level tokenizer is not the sequence SFT trained on)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    return PretokenizedDPOTrainer


def run(given: StageInput, config: DpoConfig) -> StageOutput:
    import torch
    from transformers import PrinterCallback

    from ablate import results
    from ablate.data.encoding import build_sources, parse_encoding
    from ablate.data.preference import (
        pairs_from_tasks,
        pairs_from_test,
        read_pairs,
        sample_pairs,
    )
    from ablate.stages.trl_common import (checkpoint_arguments, import_trl, restore_policy, resumed_history,
                                          trainer_callbacks, unpack_checkpoint)
    from ablate.train import DivergedError, TrainResult, autocast_dtype

    trl = import_trl("dpo")
    settings, model, tokenizer = given.settings, given.model, given.tokenizer
    train, seed = settings.train, settings.seed

    # 1. Pairs: training pairs and held-out pairs from the test tasks (for the implicit reward).
    began = time.perf_counter()
    if config.source is not None:
        pairs = sample_pairs(read_pairs(config.source), config.pairs, seed)
    else:
        pairs = pairs_from_tasks(given.data.library, given.data.selection.train_tasks, config.pairs, train.encoding,
                                 given.truncation, seed)
    encoding = parse_encoding(settings.test_encodings[0])
    held_out = pairs_from_test(given.data.test_pairs, build_sources(given.data.test_pairs, encoding, given.truncation),
                               seed=0)
    lengths = (train.max_source_length, train.max_target_length)
    train_data, held_out_data = _tokenized(tokenizer, pairs, *lengths), _tokenized(tokenizer, held_out, *lengths)
    data_seconds = time.perf_counter() - began
    given.tracker.log_metrics({results.NUM_PREFERENCE_PAIRS: len(pairs)})

    # 2. TRL's settings: ours, and the SFT stage's precision, device and clipping.
    device_type = torch.device(given.device).type
    dtype = autocast_dtype(train.precision, device_type)
    losses = [config.loss_type] + (["sft"] if config.sft_mix > 0 else [])
    folder = tempfile.TemporaryDirectory(prefix="ablate-dpo-")
    args = trl.DPOConfig(
        output_dir=folder.name, max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=settings.eval.batch_size, learning_rate=config.learning_rate,
        lr_scheduler_type=config.schedule, warmup_steps=config.warmup_steps, weight_decay=0.0, max_grad_norm=1.0,
        beta=config.beta, loss_type=losses, loss_weights=[1.0, config.sft_mix] if config.sft_mix > 0 else None,
        bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16, use_cpu=device_type == "cpu", seed=seed,
        logging_steps=1, report_to="none", disable_tqdm=True, gradient_checkpointing=False,
        max_length=train.max_source_length + train.max_target_length + 1, dataloader_num_workers=0,
        **checkpoint_arguments(given.save_checkpoint, train.checkpoint_every))

    # 3. Reference: a frozen copy of the policy as it is now (LoRA: TRL copies the adapter itself).
    peft = hasattr(model, "peft_config")
    reference = None
    if not peft:
        reference = copy.deepcopy(model).eval()
        reference.requires_grad_(False)

    history: dict[str, list[tuple[int, float]]] = {key: [] for key in results.DPO_SERIES.values()}
    resume = given.resume_state
    resumed_history(resume, history)
    callbacks, trained = trainer_callbacks(config.steps, results.DPO_SERIES, history, given.save_checkpoint,
                                           lambda: {"reference": _reference_state(model, reference, peft)})
    trainer = _trainer_class(trl)(model=model, ref_model=reference, args=args, train_dataset=train_data,
                                  processing_class=tokenizer, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # the series go to MLflow, not to the worker's stdout
    if resume is not None:
        _load_reference(model, reference, peft, resume["reference"])
    checkpoint = unpack_checkpoint(resume, folder.name)

    # 4. Train, then the implicit reward on held-out pairs while the reference is at hand.
    began = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
        seconds = time.perf_counter() - began
        if any(not math.isfinite(v) for _, v in history[results.DPO_LOSS]):
            raise DivergedError(f"preference tuning diverged: the DPO loss is not finite (learning rate "
                                f"{config.learning_rate}); lower the dpo stage's learning_rate")
        scores = trainer.evaluate(held_out_data) if len(held_out_data) else {}
    finally:
        restore_policy(model, peft)
        folder.cleanup()
    given.tracker.log_series(history)
    given.tracker.set_tags(results.stage_resumed_tags(config.kind, trained["from"], trained["steps"]))
    if scores:
        given.tracker.log_metrics({results.DPO_HELD_OUT_ACCURACY: 100.0 * scores["eval_rewards/accuracies"],
                                   results.DPO_HELD_OUT_MARGIN: scores["eval_rewards/margins"]})
    steps_run = trained["steps"]
    return StageOutput(TrainResult(steps=config.steps, seconds=seconds,
                                   examples_per_second=steps_run * config.batch_size / max(seconds, 1e-9),
                                   loss_history=history[results.DPO_LOSS]), data_seconds)


def _reference_state(model, reference, peft: bool) -> dict[str, Any]:
    if peft:
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if f".{REFERENCE_ADAPTER}." in k}
    return {k: v.detach().cpu().clone() for k, v in reference.state_dict().items()}


def _load_reference(model, reference, peft: bool, state: dict[str, Any]) -> None:
    """The reference as it was when the stage began (the resumed policy is not it any more)."""
    if peft:
        missing = set(state) - set(model.state_dict())
        assert not missing, f"reference adapter weights without a place: {sorted(missing)[:3]}"
        model.load_state_dict(state, strict=False)
    else:
        reference.load_state_dict(state)
