"""The `sft` stage: supervised fine-tuning on the cell's instruction mixture (Tk-Instruct
prompts of its training tasks), with the loss on the targets. Its settings are the spec's
`train` block (steps or epochs, batch, learning rate and schedule, lengths, precision, LoRA)."""

from __future__ import annotations

import time
from typing import Literal

from ablate.stages.base import StageInput, StageOutput
from ablate.typed import Frozen


class SftConfig(Frozen):
    """Supervised fine-tuning on the cell's instruction mixture; its settings are the spec's `train` block."""

    kind: Literal["sft"] = "sft"


def run(given: StageInput, config: SftConfig) -> StageOutput:
    from ablate import results
    from ablate.data.build import build_train_dataset, tokenize_dataset
    from ablate.train import train_model

    settings, model = given.settings, given.model
    data, train = settings.data, settings.train
    began = time.perf_counter()
    train_rows = build_train_dataset(given.data.library, given.data.selection, data.instances_per_task,
                                     train.encoding, given.truncation, settings.seed,
                                     options_max=data.max_options if train.options_in_prompt else None)
    train_data = tokenize_dataset(train_rows, given.tokenizer, given.tokenizer_id, train.max_source_length,
                                  train.max_target_length, given.cache_dir, causal=not model.config.is_encoder_decoder)
    data_seconds = time.perf_counter() - began
    logged = {results.NUM_TRAIN_TASKS: len(given.data.selection.train_tasks), results.NUM_TRAIN_EXAMPLES: len(train_data)}
    given.tracker.log_metrics(logged)
    pauses = {step: (lambda history, pause=pause: pause(history, logged)) for step, pause in given.pauses.items()}
    result = train_model(model, given.tokenizer, train_data, train, settings.seed, device=given.device,
                         resume_state=given.resume_state, save_checkpoint=given.save_checkpoint,
                         pauses=pauses)
    given.tracker.log_series({results.TRAIN_LOSS: result.loss_history})
    return StageOutput(result, data_seconds)
