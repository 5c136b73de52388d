"""The `generate` evaluator: greedy (or beam) generation, scored by the official SuperNI metrics
(exact match, ROUGE-1, ROUGE-L; `ablate/metrics.py`). Its decoding settings are the eval block's
`max_new_tokens`, `num_beams` and `batch_size`."""

from __future__ import annotations

from typing import Literal

from ablate.evaluators.base import EvalInput, EvalOutput, Evaluator
from ablate.results import MetricSpec
from ablate.typed import Frozen


class GenerateConfig(Frozen):
    """Generation scored by the official SuperNI metrics (exact match, ROUGE-1, ROUGE-L); decoding from `eval`."""

    kind: Literal["generate"] = "generate"


METRICS = (
    MetricSpec("exact_match", "exact match after normalisation, max over references (x100)", per_instance="binary"),
    MetricSpec("rouge1", "ROUGE-1 F-measure with the Porter stemmer, max over references (x100)"),
    MetricSpec("rougeL", "ROUGE-L F-measure with the Porter stemmer, max over references (x100)"),
)


def evaluate(given: EvalInput, config: GenerateConfig) -> EvalOutput:
    from ablate.baselines import baseline_predictions
    from ablate.evaluate import generate_predictions, prediction_records, score_rows

    if given.model is None:
        predictions = baseline_predictions(given.model_name, given.pairs)
    else:
        predictions = generate_predictions(given.model, given.tokenizer, given.rows["source"],
                                           max_source_length=given.max_source_length,
                                           max_new_tokens=given.eval.max_new_tokens,
                                           num_beams=given.eval.num_beams, batch_size=given.eval.batch_size)
    return EvalOutput(score_rows(given.rows, predictions), prediction_records(given.rows, predictions))


def instance_scores(records) -> dict[str, list[float]]:
    """Each prediction scored again with the official metrics (so sweeps of any version compare)."""
    from ablate.metrics import score_one

    scored = [score_one(r["prediction"], r["references"]) for r in records]
    return {m.name: [m.scale * one[m.name] for one in scored] for m in METRICS}


GENERATE = Evaluator(kind="generate", config=GenerateConfig, metrics=METRICS, headline="rougeL", evaluate=evaluate,
                     needs_model=False, instance_scores=instance_scores,
                     record_fields=frozenset({"prediction", "references"}))
