"""The official Super-NaturalInstructions metrics (default track).

Exact match after normalisation, ROUGE-1 and ROUGE-L F-measure with the Porter stemmer
(the `rouge-score` package), each the maximum over references, 100 x mean, rounded to 4
decimals; grouped per task, per category and per cluster.
"""

from __future__ import annotations

import string
from collections import defaultdict
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from ablate.results import MetricSpec

# The official evaluation script's headline metric for its evaluation categories.
OFFICIAL_CATEGORY_METRIC = {
    "textual_entailment": "exact_match",
    "cause_effect_classification": "exact_match",
    "coreference_resolution": "exact_match",
    "dialogue_act_recognition": "exact_match",
    "answerability_classification": "exact_match",
    "word_analogy": "exact_match",
    "overlap_extraction": "rougeL",
    "keyword_tagging": "rougeL",
    "question_rewriting": "rougeL",
    "title_generation": "rougeL",
    "data_to_text": "rougeL",
    "grammar_error_correction": "rougeL",
}
# Other categories: exact match when the category is a classification, ROUGE-L otherwise.
_CLASSIFICATION_SUFFIXES = ("classification", "detection", "recognition", "identification",
                            "verification", "entailment", "analysis")


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, collapse whitespace (SQuAD-style, articles kept)."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(text.split())


def category_key(category: str) -> str:
    """The official group name of a category: lower case, words joined by '_'."""
    return "_".join(category.lower().split())


def headline_metric(category: str) -> str:
    key = category_key(category)
    if key in OFFICIAL_CATEGORY_METRIC:
        return OFFICIAL_CATEGORY_METRIC[key]
    return "exact_match" if key.endswith(_CLASSIFICATION_SUFFIXES) else "rougeL"


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)


def score_one(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """Per-instance scores in [0, 1]: each metric's maximum over the references."""
    if not references:
        raise ValueError("an instance needs at least one reference")
    exact = max(float(normalize_answer(prediction) == normalize_answer(ref)) for ref in references)
    rouge = [_scorer().score(target=ref, prediction=prediction) for ref in references]
    return {
        "exact_match": exact,
        "rouge1": max(r["rouge1"].fmeasure for r in rouge),
        "rougeL": max(r["rougeL"].fmeasure for r in rouge),
    }


def aggregate(per_instance: Sequence[Mapping[str, float]], specs: Sequence[MetricSpec] | None = None) -> dict[str, float]:
    """Each declared metric's group score: its scale (x100 for shares) x the mean of the
    per-instance scores, rounded as the official script rounds (4 decimals). `specs`: the generate
    evaluator's metrics unless given."""
    if not per_instance:
        raise ValueError("no instances to aggregate")
    if specs is None:
        from ablate.evaluators.generate import METRICS as specs
    return {m.name: round(m.scale * sum(s[m.name] for s in per_instance) / len(per_instance), m.decimals)
            for m in specs}


def compute_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    return aggregate([score_one(p, r) for p, r in zip(predictions, references)])


def _grouped(scores: Sequence[Mapping[str, float]], groups: Iterable[str]) -> dict[str, dict[str, float]]:
    by_group: dict[str, list[Mapping[str, float]]] = defaultdict(list)
    for score, group in zip(scores, groups):
        by_group[group].append(score)
    return {group: aggregate(members) for group, members in sorted(by_group.items())}


def evaluate_predictions(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    tasks: Sequence[str],
    categories: Sequence[str],
    clusters: Sequence[str] | None = None,
) -> dict:
    """Overall, per-task, per-category (official names) and per-cluster metrics.

    `categories` are the tasks' first categories as written in the task files; the result
    also names each category's official headline metric and its value.
    """
    scores = [score_one(p, r) for p, r in zip(predictions, references)]
    result: dict = aggregate(scores)
    result["per_task"] = _grouped(scores, tasks)
    result["per_category"] = _grouped(scores, [category_key(c) for c in categories])
    result["headline_metric"] = {category_key(c): headline_metric(c) for c in sorted(set(categories))}
    result["per_category_headline"] = {
        key: result["per_category"][key][metric] for key, metric in result["headline_metric"].items()
    }
    if clusters is not None:
        result["per_cluster"] = _grouped(scores, clusters)
    return result
