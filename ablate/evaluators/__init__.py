"""Evaluators, found by name (the `kind` of an entry of `eval.evaluators`).

    generate   generation scored by the official SuperNI metrics (the default)
    rank       FLAN's rank classification over each instance's answer options
    preference held-out (chosen, rejected) pairs ranked by the model's log-probabilities
    abstention on questions whose truthful answer is "none": abstentions vs hallucinations
    lm_eval    EleutherAI's lm-evaluation-harness tasks (MMLU, TruthfulQA, ...; the optional extra)

Each evaluator's module holds its settings, its declared metrics and its `evaluate` function
(the contract is `ablate/evaluators/base.py`); this registry is the one list of them.
"""

from __future__ import annotations

from ablate.evaluators.base import Evaluator
from ablate.evaluators.generate import GENERATE
from ablate.evaluators.lm_eval import LM_EVAL
from ablate.evaluators.rank import RANK
from ablate.evaluators.preference import PREFERENCE
from ablate.evaluators.abstention import ABSTENTION
from ablate.results import MetricSpec
from ablate.typed import tagged_union

EVALUATORS: dict[str, Evaluator] = {e.kind: e for e in (GENERATE, RANK, PREFERENCE, ABSTENTION, LM_EVAL)}


def evaluator_of(kind: str) -> Evaluator:
    return EVALUATORS[kind]


def evaluator_of_metric(metric: str) -> Evaluator:
    """The evaluator that declares `metric`."""
    return next(e for e in EVALUATORS.values() if metric in e.metric_names)


def declared_metrics() -> dict[str, MetricSpec]:
    """Every evaluator's metrics by name (names are unique across evaluators)."""
    found: dict[str, MetricSpec] = {}
    for evaluator in EVALUATORS.values():
        for metric in evaluator.metrics:
            assert metric.name not in found, f"metric {metric.name} declared twice"
            found[metric.name] = metric
    return found


EvaluatorConfig = tagged_union(tuple(e.config for e in EVALUATORS.values()), "evaluator")
