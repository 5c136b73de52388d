"""The `rank` evaluator: FLAN's rank classification. Each test instance with answer options (its
own `options`, or its task's label set: at most `data.max_options` distinct references) is scored by
the log-likelihood the model gives each option as the target (exactly the tokens training puts
its loss on), and the model's choice is the likeliest option. Tasks without options are left to
the generate evaluator and listed (`unscored/rank/<encoding>.json` in the cell's run).

Metrics: `acc` (the choice is a reference, x100), `acc_norm` (the same, with each option's
score divided by its token count), `ll_correct` (the mean log-likelihood per token of the best
reference: a continuous score that moves before the choice does).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.evaluators.base import EvalInput, EvalOutput, Evaluator
from ablate.results import MetricSpec
from ablate.typed import Frozen


class RankConfig(Frozen):
    """FLAN's rank classification: the answer option the model scores most likely, over each instance's options."""

    kind: Literal["rank"] = "rank"
    batch_size: int | None = Field(None, gt=0, le=65_536,
                                   description="(prompt, option) sequences per forward pass; null: eval.batch_size")


METRICS = (
    MetricSpec("acc", "rank classification: the likeliest option is a reference (x100)", per_instance="binary"),
    MetricSpec("acc_norm", "rank classification with length-normalised option scores (x100)", per_instance="binary"),
    MetricSpec("ll_correct", "mean log-likelihood per token of the best reference (nats; higher is better)",
               low=None, high=0.0, per_instance="continuous", scale=1.0),
)


def evaluate(given: EvalInput, config: RankConfig) -> EvalOutput:
    from ablate.rank import rank_rows

    options = given.options
    keep = [i for i, o in enumerate(options) if o]
    unscored = sorted({given.rows["task"][i] for i, o in enumerate(options) if not o})
    if not keep:
        return EvalOutput({}, [], unscored)
    rows = {column: [values[i] for i in keep] for column, values in given.rows.items()}
    scores, records = rank_rows(given.model, given.tokenizer, rows, [options[i] for i in keep],
                                max_source_length=given.max_source_length,
                                max_target_length=given.max_target_length,
                                batch_size=config.batch_size or given.eval.batch_size, device=given.device)
    return EvalOutput(scores, records, unscored)


def check(cell, selection, library, config: RankConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings) before anything starts: a model that has likelihoods, test tasks with options."""
    from ablate.model import is_baseline

    if is_baseline(cell.settings.model):
        return [f"eval.evaluators: rank needs a model that gives likelihoods; '{cell.settings.model}' is a "
                "heuristic baseline. Score baselines with the generate evaluator only."], []
    max_options = cell.settings.data.max_options
    without = [n for n in selection.test_tasks if not library.has_options(n, max_options)]
    if len(without) == len(selection.test_tasks):
        return [f"eval.evaluators: rank found no test task with answer options (an instance 'options' list, or at "
                f"most data.max_options = {max_options} distinct references); raise data.max_options or use "
                "generate."], []
    if without:
        return [], [f"rank: {len(without)} test task(s) have no answer options and are not ranked "
                    f"({', '.join(without[:5])}{', ...' if len(without) > 5 else ''}); the generate evaluator "
                    "scores them."]
    return [], []


def instance_scores(records) -> dict[str, list[float]]:
    """Each instance's rank metrics, as its record holds them."""
    return {m.name: [m.scale * r[m.name] for r in records] for m in METRICS}


RANK = Evaluator(kind="rank", config=RankConfig, metrics=METRICS, headline="acc", evaluate=evaluate, check=check,
                 instance_scores=instance_scores,
                 record_fields=frozenset({"references", *(m.name for m in METRICS)}))
