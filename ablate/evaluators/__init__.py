"""Evaluators, found by name (the `kind` of an entry of `eval.evaluators`).

    generate   generation scored by the official SuperNI metrics (the default)
    rank       FLAN's rank classification over each instance's answer options
    lm_eval    EleutherAI's lm-evaluation-harness tasks (MMLU, TruthfulQA, ...; the optional extra)

Each evaluator's module holds its settings, its declared metrics and its `evaluate` function
(the contract is `ablate/evaluators/base.py`); this registry is the one list of them.
"""

from __future__ import annotations

from typing import Any

from ablate.evaluators.base import Evaluator
from ablate.evaluators.generate import GENERATE
from ablate.evaluators.lm_eval import LM_EVAL
from ablate.evaluators.rank import RANK
from ablate.results import MetricSpec
from ablate.typed import tagged_union

EVALUATORS: dict[str, Evaluator] = {e.kind: e for e in (GENERATE, RANK, LM_EVAL)}


def evaluator_of(kind: str) -> Evaluator:
    return EVALUATORS[kind]


def declared_metrics() -> dict[str, MetricSpec]:
    """Every evaluator's metrics by name (names are unique across evaluators)."""
    found: dict[str, MetricSpec] = {}
    for evaluator in EVALUATORS.values():
        for metric in evaluator.metrics:
            assert metric.name not in found, f"metric {metric.name} declared twice"
            found[metric.name] = metric
    return found


def _by_kind(value: Any) -> Any:
    """`generate` as shorthand for `{kind: generate}`; an unknown kind named with the known ones."""
    from ablate.errors import did_you_mean

    entry = {"kind": value} if isinstance(value, str) else value
    if isinstance(entry, dict) and entry.get("kind") not in EVALUATORS:
        raise ValueError(f"unknown evaluator '{entry.get('kind')}'. {did_you_mean(str(entry.get('kind')), list(EVALUATORS))}")
    return entry


EvaluatorConfig = tagged_union(tuple(e.config for e in EVALUATORS.values()), _by_kind)
