"""The `lm_eval` evaluator: EleutherAI's lm-evaluation-harness (MMLU, BBH, TruthfulQA, ARC, ...)
on the cell's trained model, so an ablation can ask what instruction tuning costs on the
benchmarks papers report (InstructGPT's alignment tax).

    eval:
      evaluators:
        - generate
        - {kind: lm_eval, tasks: [mmlu, truthfulqa_mc2], num_fewshot: 0, limit: 100}

`lm_eval.simple_evaluate` runs on an `HFLM` wrapping the cell's model and tokenizer in memory (no
save and reload), on the cell's device, after training: decoder-only models with lm-eval's
"causal" backend, encoder-decoder models with its "seq2seq" one. Its scores do not depend on the
SuperNI test encoding, so it runs once, on the first test encoding, and logs
`lm_eval/<task>/<metric>` and `lm_eval/<task>/<metric>_stderr` (lm-eval's own values, shares
in [0, 1] as its tables print them; a filter other than lm-eval's "none" is appended as
`<metric>.<filter>`, e.g. `exact_match.strict-match`), its own time (`lm_eval_seconds`), and
lm-eval's results JSON (versions, task configs, n-shot, seeds) as `lm_eval/results.json`.

Needs the optional extra: pip install -e ".[lm-eval]".
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ablate import results
from ablate.evaluators.base import EvalInput, EvalOutput, Evaluator
from ablate.results import MetricSpec
from ablate.typed import NOT_IDENTITY, Frozen

INSTALL = 'pip install -e ".[lm-eval]"'


def lm_eval_installed() -> bool:
    try:
        import lm_eval  # noqa: F401  (0.3 s: only the package, not its tasks)
    except ImportError:
        return False
    return True


def folder_fingerprint(folder: Path) -> str:
    """A hash of every file's relative path and bytes (caches and hidden files left out)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts)):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class LmEvalConfig(Frozen):
    """EleutherAI's lm-evaluation-harness tasks (MMLU, TruthfulQA, ...) on the cell's model; needs the lm-eval extra."""

    kind: Literal["lm_eval"] = "lm_eval"
    tasks: list[str] = Field(min_length=1, description="lm-eval task, group or tag names (e.g. mmlu, truthfulqa_mc2)")
    include_path: str | None = Field(None, min_length=1, json_schema_extra=NOT_IDENTITY,
                                     description="a folder of task YAMLs (local or private tasks), searched before "
                                                 "lm-eval's own")
    include_fingerprint: str | None = Field(None, description="set by ablate: a hash of include_path's files (the "
                                                              "cell id holds what the tasks are, not where)")
    num_fewshot: int | None = Field(None, ge=0, le=1000, description="few-shot examples; null: each task's default")
    limit: int | float | None = Field(None, gt=0, description="documents per task: a count, or a share below 1; "
                                                              "null: all (lm-eval: for testing only)")
    batch_size: int | None = Field(None, gt=0, le=65_536, description="requests per forward pass; null: eval.batch_size")
    metrics: list[str] | None = Field(None, min_length=1,
                                      description="lm-eval metric names to keep (acc, acc_norm, exact_match, ...) with "
                                                  "their stderr; null: every metric a task reports")
    log_samples: bool = Field(False, description="also log lm-eval's per-document records (lm_eval/samples/<task>.jsonl)")

    @model_validator(mode="before")
    @classmethod
    def _fingerprint(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("include_path"), str) and Path(data["include_path"]).is_dir():
            data = {**data, "include_fingerprint": folder_fingerprint(Path(data["include_path"]))}
        return data

    @field_validator("kind")
    @classmethod
    def _installed(cls, value: str) -> str:
        if not lm_eval_installed():
            raise ValueError(f"the lm_eval evaluator needs lm-evaluation-harness, which is not installed. "
                             f"Install it with: {INSTALL}")
        return value

    @field_validator("include_path")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError(f"include_path '{value}' is not a folder; give a folder of lm-eval task YAMLs")
        return value

    @field_validator("metrics")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"metric '{name}' is not an lm-eval metric name (letters, digits and _)")
        return value


# The metrics lm-eval's tasks report most often, for the report's axes and ranges; any other a task
# reports is logged too, as an unbounded score.
KNOWN_METRICS = {
    "acc": MetricSpec("acc", "lm-eval: the likeliest choice is the answer (share)", high=1.0, per_instance="binary",
                      scale=1.0),
    "acc_norm": MetricSpec("acc_norm", "lm-eval: the same, with byte-length-normalised choice scores (share)",
                           high=1.0, per_instance="binary", scale=1.0),
    "exact_match": MetricSpec("exact_match", "lm-eval: generated text equals the target (share)", high=1.0,
                              per_instance="binary", scale=1.0),
    "f1": MetricSpec("f1", "lm-eval: F1 (share)", high=1.0, scale=1.0),
    "mcc": MetricSpec("mcc", "lm-eval: Matthews correlation", low=-1.0, high=1.0, per_instance="continuous", scale=1.0),
    "bleu": MetricSpec("bleu", "lm-eval: BLEU", high=100.0, scale=1.0),
    "perplexity": MetricSpec("perplexity", "lm-eval: perplexity", low=1.0, high=None, higher_is_better=False,
                             per_instance="continuous", scale=1.0),
    "word_perplexity": MetricSpec("word_perplexity", "lm-eval: word perplexity", low=1.0, high=None,
                                  higher_is_better=False, per_instance="continuous", scale=1.0),
}
STDERR = "_stderr"


def metric_spec_of(key: str) -> MetricSpec:
    """The declaration of one `lm_eval/<task>/<metric>` key (a known metric's range and direction)."""
    _, metric = results.parse_lm_eval_key(key)
    base = metric.split(".", 1)[0]
    if base.endswith(STDERR):
        return MetricSpec(key, f"lm-eval: standard error of {base[:-len(STDERR)]}", high=None,
                          higher_is_better=False, per_instance="continuous", scale=1.0)
    known = KNOWN_METRICS.get(base)
    if known is None:
        return MetricSpec(key, f"lm-eval: {base}", low=None, high=None, per_instance="continuous", scale=1.0)
    return MetricSpec(key, known.description, known.low, known.high, known.higher_is_better, known.per_instance,
                      known.scale)


def flat_metrics(lm_results: dict[str, dict[str, Any]], keep: list[str] | None) -> dict[str, float]:
    """lm-eval's `results` (task -> {"acc,none": 0.5, "acc_stderr,none": 0.2, ...}) as MLflow
    metrics `lm_eval/<task>/<metric>`; only the `keep` metrics (and their stderr) when given."""
    flat = {}
    for task, values in lm_results.items():
        for name, value in values.items():
            if "," not in name or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue  # alias, sample_len, and "N/A" stderrs
            metric, filter_name = name.split(",", 1)
            base = metric.removesuffix(STDERR)
            if keep is not None and base not in keep:
                continue
            if math.isfinite(value):
                flat[results.lm_eval_key(task, metric, filter_name)] = float(value)
    return flat


def task_manager(include_path: str | None, names: tuple[str, ...]):
    """lm-eval's task index: the include_path folder alone when it holds every named task (a second,
    not the ~20-45 s of indexing lm-eval's 14,000 built-in tasks), else both."""
    if include_path is not None:
        local = _indexed(include_path, False)
        if all(n in local.all_tasks for n in names):
            return local
    return _indexed(include_path, True)


@lru_cache(maxsize=8)
def _indexed(include_path: str | None, include_defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def backend_of(model) -> str:
    """lm-eval's HFLM backend for a model: "seq2seq" (encoder-decoder) or "causal" (decoder-only)."""
    return "seq2seq" if getattr(model.config, "is_encoder_decoder", False) else "causal"


def run_lm_eval(model, tokenizer, config: LmEvalConfig, batch_size: int, device: str) -> dict:
    """lm-eval's results dict of the in-memory model (HFLM wraps it; nothing is saved or reloaded)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend=backend_of(model), batch_size=batch_size)
    return simple_evaluate(model=lm, tasks=list(config.tasks), num_fewshot=config.num_fewshot, limit=config.limit,
                           batch_size=batch_size, device=device, log_samples=config.log_samples,
                           task_manager=task_manager(config.include_path, tuple(config.tasks)))


def evaluate(given: EvalInput, config: LmEvalConfig) -> EvalOutput:
    from lm_eval.utils import handle_non_serializable

    first_encoding = given.eval.encodings[0] if given.eval.encodings else given.encoding
    if given.encoding != first_encoding:
        return EvalOutput({})  # lm-eval's prompts are its tasks' own: scored once, on the first encoding
    began = time.perf_counter()
    output = run_lm_eval(given.model, given.tokenizer, config, config.batch_size or given.eval.batch_size, given.device)
    seconds = time.perf_counter() - began
    samples = output.pop("samples", None) or {}
    artifacts = {results.LM_EVAL_RESULTS_ARTIFACT: json.dumps(output, indent=1, default=handle_non_serializable)}
    for task, records in samples.items():
        artifacts[results.lm_eval_samples_artifact(task)] = "\n".join(
            json.dumps(r, default=handle_non_serializable, ensure_ascii=False) for r in records)
    metrics = {**flat_metrics(output["results"], config.metrics), results.LM_EVAL_SECONDS: seconds}
    return EvalOutput({}, metrics=metrics, artifacts=artifacts)


def check(cell, selection, library, config: LmEvalConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings) before anything starts: a model lm-eval can wrap, and task names it knows."""
    from ablate.model import PRESETS, is_baseline, model_kind

    model = cell.settings.model
    errors = []
    if is_baseline(model):
        errors.append(f"eval.evaluators: lm_eval scores a model's likelihoods and generations; '{model}' is a "
                      "heuristic baseline. Score baselines with the generate evaluator only.")
    elif model not in PRESETS:
        error = _backend_error(model, model_kind(model))
        if error:
            errors.append(error)
    manager = task_manager(config.include_path, tuple(config.tasks))
    for name in config.tasks:
        if name not in manager.all_tasks:
            errors.append(f"eval.evaluators: unknown lm-eval task '{name}'. {_close_names(name, manager.all_tasks)}")
    return errors, []


def _backend_error(model: str, kind: str) -> str | None:
    """A pretrained model whose type lm-eval's HF backends do not load (neither causal nor seq2seq LM)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    )

    from ablate.model import pretrained_path

    model_type = AutoConfig.from_pretrained(pretrained_path(model)).model_type
    supported = MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES if kind == "seq2seq" else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if model_type in supported:
        return None
    return (f"eval.evaluators: lm_eval cannot score model '{model}': its type '{model_type}' is not a "
            f"{'seq2seq' if kind == 'seq2seq' else 'causal'} language model that lm-eval's HF backend loads.")


def _close_names(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"Did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return f"{hint}List them with `lm_eval ls tasks`, or give include_path for a folder of task YAMLs."


# Rough cost: documents per task when no limit is given (MMLU's subjects hold ~250 on average), and
# requests per document (a multiple-choice document is one forward pass per choice, ~4).
DOCUMENTS_PER_TASK, REQUESTS_PER_DOCUMENT = 1000, 4
GROUP_SIZES = {"mmlu": 57, "bbh": 27, "mmlu_pro": 14, "agieval": 20, "cmmlu": 67, "truthfulqa": 3}
INDEX_SECONDS = 30.0  # indexing lm-eval's built-in tasks on a 2-core CPU (include_path tasks alone: ~1 s)


def estimate_seconds(settings, config: LmEvalConfig, seconds_per_example: float) -> float:
    """CPU seconds of one run, from the seconds a training step spends per example: a request is
    one forward pass, about a third of a training step's forward and backward."""
    tasks = sum(GROUP_SIZES.get(t, 1) for t in config.tasks)
    documents = DOCUMENTS_PER_TASK if config.limit is None else (
        config.limit if config.limit >= 1 else config.limit * DOCUMENTS_PER_TASK)
    requests = tasks * documents * REQUESTS_PER_DOCUMENT
    index = 1.0 if config.include_path is not None else INDEX_SECONDS
    return index + requests * seconds_per_example / 3


LM_EVAL = Evaluator(kind="lm_eval", config=LmEvalConfig, metrics=(), headline="",
                    headline_of=lambda config: results.lm_eval_key(config.tasks[0], (config.metrics or ["acc"])[0]),
                    evaluate=evaluate, check=check, estimate_seconds=estimate_seconds, metric_spec_of=metric_spec_of,
                    key_prefix=results.LM_EVAL)
