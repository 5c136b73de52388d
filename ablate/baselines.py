"""Heuristic baselines from the Super-NaturalInstructions paper: no training, one rule each."""

from __future__ import annotations

from typing import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from ablate.data.tasks import Instance, Task


class BaselineScores(BaseModel):
    """A baseline's scores on a sweep's test set, as logged to the parent run (results.BASELINES_ARTIFACT)."""

    model_config = ConfigDict(frozen=True)
    overall: dict[str, float]  # metric -> score
    per_cluster: dict[str, dict[str, float]]  # cluster name -> metric -> score

    @classmethod
    def of(cls, scores: Mapping) -> "BaselineScores":
        from ablate.evaluators.generate import GENERATE  # a baseline's predictions are text: generation's metrics

        return cls(overall={m: scores[m] for m in GENERATE.metric_names},
                   per_cluster=dict(scores.get("per_cluster", {})))


def copy_demo(task: Task, instance: Instance) -> str:
    """The output of the task's first positive example (empty if it has none)."""
    return task.positive_examples[0].output if task.positive_examples else ""


def copy_input(task: Task, instance: Instance) -> str:
    """The instance's own input."""
    return instance.input


BASELINES = {"copy_demo": copy_demo, "copy_input": copy_input}


def baseline_predictions(name: str, pairs: Sequence[tuple[Task, Instance]]) -> list[str]:
    rule = BASELINES[name]
    return [rule(task, instance) for task, instance in pairs]


def score_baselines(pairs: Sequence[tuple[Task, Instance]], cluster_of: Mapping[str, str]) -> dict[str, dict]:
    """Every baseline's official scores (overall, per task, category and cluster) on test pairs."""
    from ablate.evaluate import score_pairs

    return {name: score_pairs(pairs, baseline_predictions(name, pairs), cluster_of) for name in BASELINES}
