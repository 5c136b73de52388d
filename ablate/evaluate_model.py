"""`ablate evaluate`: a saved model folder or an `hf:` model scored on a task directory's test
split with the same code a cell uses (its test set, prompts, options and evaluators): public
instruction-tuned checkpoints as baselines beside a sweep's cells."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ablate.errors import AblateError


@dataclass(frozen=True)
class Evaluation:
    scores: dict  # the evaluator's scores (overall, per task, category and cluster)
    records: list[dict]  # one per instance (for rank: the choice and every option's score)
    unscored: list[str]  # test tasks the evaluator could not score


def evaluate_model(model_name: str, task_dir: str | Path, *, split: str, encoding: str, evaluator: str,
                   instances: int, max_source_length: int, max_target_length: int, max_new_tokens: int,
                   batch_size: int, max_options: int, options_in_prompt: bool, device: str = "cpu") -> Evaluation:
    from ablate.data.build import build_test_dataset, eval_pairs
    from ablate.data.clusters import DEFAULT_CLUSTERS, category_to_cluster
    from ablate.data.encoding import tokenizer_truncation
    from ablate.data.options import instance_options
    from ablate.data.library import TaskLibrary
    from ablate.evaluators import evaluator_of
    from ablate.evaluators.base import EvalInput
    from ablate.model import PRESETS, check_model_name, is_baseline, load_pretrained_tokenizer, missing_weights
    from ablate.validate import check_device

    # Every argument checked before anything loads: the device, the model folder, the settings.
    check_device(device, "--device")
    try:
        check_model_name(model_name)
    except ValueError as exc:
        raise AblateError(str(exc) + ".", field="MODEL", fix="give a folder written by save_pretrained or hf:<name>.") from None
    if model_name in PRESETS or is_baseline(model_name):
        raise AblateError(f"'{model_name}' is not a saved model.", field="MODEL",
                          fix="give a folder written by save_pretrained (e.g. a cell's model/ artifact) or hf:<name>.")
    if missing_weights(model_name):
        raise AblateError(missing_weights(model_name) + ".", field="MODEL",
                          fix="save the model into it (model.save_pretrained(folder)), or give another folder.")
    settings = _eval_settings(encoding=encoding, instances=instances, max_new_tokens=max_new_tokens,
                              batch_size=batch_size, evaluator=evaluator, options_in_prompt=options_in_prompt)
    library = TaskLibrary(task_dir)
    test_tasks = library.split(split).test_tasks
    pairs = eval_pairs(library, test_tasks, instances)
    label_sets = {name: library.options(name, max_options) for name in test_tasks}
    options = [instance_options(instance, label_sets[task.name]) for task, instance in pairs]

    tokenizer = load_pretrained_tokenizer(model_name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _load_model(model_name, len(tokenizer)).to(device)
    truncation = tokenizer_truncation(tokenizer, max_source_length)
    rows = build_test_dataset(pairs, encoding, truncation, category_to_cluster(DEFAULT_CLUSTERS),
                              options if options_in_prompt else None).to_dict()
    output = evaluator_of(evaluator).evaluate(EvalInput(model, tokenizer, model_name, pairs, rows, encoding, settings, max_source_length,
                                       max_target_length, options, device), settings.evaluators[0])
    return Evaluation(output.scores, output.records, output.unscored)


# The flag of each EvalSpec field `ablate evaluate` sets, for its messages.
_FLAGS = {"encodings": "--encoding", "instances_per_task": "--instances", "max_new_tokens": "--max-new-tokens",
          "batch_size": "--batch-size", "evaluators": "--evaluator", "options_in_prompt": "--options-in-prompt"}


def _eval_settings(*, encoding: str, instances: int, max_new_tokens: int, batch_size: int, evaluator: str,
                   options_in_prompt: bool):
    """The EvalSpec of the flags; a value it refuses (an unknown encoding) is an error naming the flag."""
    from pydantic import ValidationError

    from ablate.errors import validation_problems
    from ablate.spec import EvalSpec

    try:
        return EvalSpec(encodings=[encoding], instances_per_task=instances, max_new_tokens=max_new_tokens,
                        batch_size=batch_size, evaluators=[{"kind": evaluator}], options_in_prompt=options_in_prompt)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = _FLAGS.get(str(first["loc"][0]) if first["loc"] else "", "--encoding")
        problem, _, fix = validation_problems(exc, EvalSpec)[0].split(": ", 1)[-1].partition(" To fix: ")
        raise AblateError(problem, field=flag, fix=fix or f"correct {flag} as said (`ablate evaluate --help`).") \
            from None


def _load_model(model_name: str, vocab_size: int):
    """The saved model's weights, or an AblateError naming the folder (truncated or foreign weights)."""
    from ablate.errors import first_line
    from ablate.model import build_model

    try:
        return build_model(model_name, vocab_size, seed=0)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise AblateError(f"cannot load the model's weights ({first_line(exc)}).", file=model_name, field="MODEL",
                          fix="give a folder written by save_pretrained (a cell's model/ artifact), or hf:<name>.") \
            from None
    except Exception as exc:  # safetensors raises its own SafetensorError for a damaged file
        if type(exc).__name__ != "SafetensorError":
            raise
        raise AblateError(f"cannot load the model's weights ({first_line(exc)}).", file=model_name, field="MODEL",
                          fix="save the model again (model.save_pretrained(folder)): its weights file is damaged.") \
            from None
