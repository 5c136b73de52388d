"""The `preference` evaluator: does the model rank a held-out pair's chosen answer over its
rejected one? Pairs are built from the cell's test instances (ablate.data.preference:
chosen = the reference, rejected = another test instance's answer of the same task, a
hallucination where the truthful answer is "none"), with the test encoding's prompts.

The score is the policy's own log-probability of each answer given the prompt (the tokens
training puts the loss on, EOS included: ablate.rank.score_options), so every cell can be
scored, SFT-only cells too. It is not the DPO implicit reward, which needs the reference model;
that one is measured by the `dpo` stage on the same held-out pairs, while the reference is at
hand (the run's `dpo/held_out_reward_accuracy`).

Metrics: `pref_acc` (log p(chosen) > log p(rejected), x100) and `pref_margin` (the mean of
log p(chosen) - log p(rejected), nats).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field

from ablate.evaluators.base import EvalInput, EvalOutput, Evaluator
from ablate.results import MetricSpec
from ablate.typed import Frozen


class PreferenceConfig(Frozen):
    """Held-out (chosen, rejected) pairs ranked by the model's log-probabilities."""

    kind: Literal["preference"] = "preference"
    batch_size: int | None = Field(None, gt=0, le=65_536,
                                   description="(prompt, answer) sequences per forward pass; null: eval.batch_size")


METRICS = (
    MetricSpec("pref_acc", "held-out pairs whose chosen answer the model finds likelier than the rejected one "
                           "(sum of token log-probabilities; x100)", per_instance="binary"),
    MetricSpec("pref_margin", "mean log p(chosen) - log p(rejected) over held-out pairs (nats)",
               low=None, high=None, per_instance="continuous", scale=1.0),
)


def summarize(per_instance: Sequence[Mapping[str, float]], rows: Mapping[str, Sequence], keep: Sequence[int],
              metrics: Sequence[MetricSpec] = METRICS) -> dict:
    """Overall and per task / category / cluster means (shares x100), rounded to 4 decimals: the
    shape of ablate.metrics.evaluate_predictions' result."""
    from ablate.metrics import category_key

    def aggregate(members: Sequence[Mapping[str, float]]) -> dict[str, float]:
        found = {}
        for spec in metrics:
            found[spec.name] = round(spec.scale * sum(m[spec.name] for m in members) / len(members), spec.decimals)
        return found

    result: dict = aggregate(per_instance)
    for group, column in (("task", "task"), ("category", "category"), ("cluster", "cluster")):
        by_name: dict[str, list] = defaultdict(list)
        for score, i in zip(per_instance, keep):
            name = rows[column][i]
            by_name[category_key(name) if group == "category" else name].append(score)
        result[f"per_{group}"] = {name: aggregate(members) for name, members in sorted(by_name.items())}
    return result


def evaluate(given: EvalInput, config: PreferenceConfig) -> EvalOutput:
    from ablate.data.preference import pairs_from_test
    from ablate.rank import score_options

    pairs = pairs_from_test(given.pairs, given.rows["source"], seed=0)
    position = {instance_id: i for i, instance_id in enumerate(given.rows["id"])}
    keep = [position[p.id] for p in pairs]
    scored = score_options(given.model, given.tokenizer, [p.prompt for p in pairs],
                           [[p.chosen, p.rejected] for p in pairs], max_source_length=given.max_source_length,
                           max_target_length=given.max_target_length,
                           batch_size=config.batch_size or given.eval.batch_size, device=given.device)
    per_instance, records = [], []
    for pair, (chosen, rejected) in zip(pairs, scored):
        per_instance.append({"pref_acc": float(chosen.logprob > rejected.logprob),
                             "pref_margin": chosen.logprob - rejected.logprob})
        records.append({"id": pair.id, "task": pair.task, "chosen": pair.chosen, "rejected": pair.rejected,
                        "logp_chosen": chosen.logprob, "logp_rejected": rejected.logprob})
    unscored = sorted({t.name for t, _ in given.pairs} - {p.task for p in pairs})
    if not pairs:
        return EvalOutput({}, [], unscored)
    return EvalOutput(summarize(per_instance, given.rows, keep), records, unscored)


def check(cell, selection, library, config: PreferenceConfig) -> tuple[list[str], list[str]]:
    from ablate.model import is_baseline

    if is_baseline(cell.settings.model):
        return [f"eval.evaluators: preference needs a model that gives likelihoods; '{cell.settings.model}' is a "
                "heuristic baseline."], []
    return [], []


def instance_scores(records) -> dict[str, list[float]]:
    """Each held-out pair's scores from its record's log-probabilities (so paired comparisons
    of pref_acc and pref_margin read the cells' predictions artifacts)."""
    spec = {m.name: m for m in METRICS}
    return {"pref_acc": [spec["pref_acc"].scale * float(r["logp_chosen"] > r["logp_rejected"]) for r in records],
            "pref_margin": [spec["pref_margin"].scale * (r["logp_chosen"] - r["logp_rejected"]) for r in records]}


PREFERENCE = Evaluator(kind="preference", config=PreferenceConfig, metrics=METRICS, headline="pref_acc",
                       evaluate=evaluate, check=check, instance_scores=instance_scores,
                       record_fields=frozenset({"logp_chosen", "logp_rejected"}))
