"""The `abstention` evaluator: on the test questions whose truthful answer is "none" (the input
holds nothing that fits: the synthetic suite's "first/last/every <class> ..., or none" tasks on a
list without that class), how often the model says so, and how often it names something the input
does not hold instead (a hallucination). InstructGPT's "I have no comment" finding, in miniature.

Greedy generation (the eval block's max_new_tokens and batch_size) on those questions only. Per
question: `abstain_rate` counts an answer that is exactly "none"; `hallucination_rate` an answer
with a word the input does not hold (answers naming only words of the input are neither).
"""

from __future__ import annotations

from typing import Literal

from ablate.evaluators.base import EvalInput, EvalOutput, Evaluator
from ablate.results import MetricSpec
from ablate.typed import Frozen


class AbstentionConfig(Frozen):
    """On questions whose truthful answer is "none": the share of abstentions vs hallucinations."""

    kind: Literal["abstention"] = "abstention"


METRICS = (
    MetricSpec("abstain_rate", "of test questions whose truthful answer is 'none': answered none (x100)",
               per_instance="binary"),
    MetricSpec("hallucination_rate", "of test questions whose truthful answer is 'none': answered with a word the "
                                     "input does not hold (x100)", per_instance="binary", higher_is_better=False),
)


def judge(prediction: str, instance_input: str) -> dict[str, float]:
    from ablate.data.preference import NONE_ANSWER
    from ablate.metrics import normalize_answer

    answer = normalize_answer(prediction).split()
    held = set(normalize_answer(instance_input).split())
    abstained = answer == [NONE_ANSWER]
    return {"abstain_rate": float(abstained),
            "hallucination_rate": float(not abstained and any(w not in held and w != NONE_ANSWER for w in answer))}


def evaluate(given: EvalInput, config: AbstentionConfig) -> EvalOutput:
    from ablate.data.preference import is_abstention_question
    from ablate.evaluate import generate_predictions
    from ablate.evaluators.preference import summarize

    keep = [i for i, refs in enumerate(given.rows["references"]) if is_abstention_question(refs)]
    unscored = sorted(set(given.rows["task"]) - {given.rows["task"][i] for i in keep})
    if not keep:
        return EvalOutput({}, [], unscored)
    predictions = generate_predictions(given.model, given.tokenizer, [given.rows["source"][i] for i in keep],
                                       max_source_length=given.max_source_length,
                                       max_new_tokens=given.eval.max_new_tokens, num_beams=given.eval.num_beams,
                                       batch_size=given.eval.batch_size)
    per_instance = [judge(p, given.pairs[i][1].input) for p, i in zip(predictions, keep)]
    records = [{"id": given.rows["id"][i], "task": given.rows["task"][i], "prediction": p, **score}
               for p, i, score in zip(predictions, keep, per_instance)]
    return EvalOutput(summarize(per_instance, given.rows, keep, METRICS), records, unscored)


def check(cell, selection, library, config: AbstentionConfig) -> tuple[list[str], list[str]]:
    from ablate.data.build import eval_pairs
    from ablate.data.preference import is_abstention_question
    from ablate.model import is_baseline

    if is_baseline(cell.settings.model):
        return [f"eval.evaluators: abstention generates with a model; '{cell.settings.model}' is a heuristic "
                "baseline. Score baselines with the generate evaluator only."], []
    pairs = eval_pairs(library, selection.test_tasks, cell.settings.eval.instances_per_task)
    if not any(is_abstention_question(instance.references) for _, instance in pairs):
        return ["eval.evaluators: abstention found no test instance whose answer is 'none'; it scores questions "
                "with no true answer (the built-in suite's 'first/last/every <class> ..., or none' tasks). Remove "
                "it or test on such tasks."], []
    return [], []


ABSTENTION = Evaluator(kind="abstention", config=AbstentionConfig, metrics=METRICS, headline="abstain_rate",
                       evaluate=evaluate, needs_model=True, check=check)
