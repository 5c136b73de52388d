"""The contract of an evaluator: its typed settings, the metrics it declares, and one function
that scores a cell's model on one test encoding of the cell's test set.

A new evaluator is one module (its settings class with a `kind`, its `MetricSpec`s and its
`evaluate` function) and one entry in `ablate/evaluators/__init__.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ablate.results import MetricSpec


@dataclass(frozen=True)
class EvalInput:
    """What every evaluator is given for one test encoding of a cell."""

    model: Any  # the trained model (None for a heuristic baseline)
    tokenizer: Any
    model_name: str  # the spec's model (a preset, an hf: name, a folder, or a baseline)
    pairs: Sequence[tuple[Any, Any]]  # (Task, Instance) of the test set, in order
    rows: Mapping[str, list]  # the encoded test rows: id, task, category, cluster, source, references
    encoding: str
    eval: Any  # the cell's EvalSpec (test set, generation settings, batch size)
    max_source_length: int  # model tokens of a source, and of a target, as training cut them
    max_target_length: int
    options: Sequence[Any] = ()  # each row's answer options (a list of strings), or None (ablate.data.options)
    device: str = "cpu"


@dataclass
class EvalOutput:
    """Scores in the shape `ablate.metrics.evaluate_predictions` gives (overall per metric, and
    per_task / per_category / per_cluster), and one JSON-able record per instance."""

    scores: dict  # empty when the evaluator had nothing to score on this encoding
    records: list[dict] = field(default_factory=list)
    unscored: list[str] = field(default_factory=list)  # test tasks this evaluator could not score
    metrics: dict[str, float] = field(default_factory=dict)  # flat metrics under the evaluator's own keys (ablate.results)
    artifacts: dict[str, str] = field(default_factory=dict)  # run artifact path -> text (e.g. lm-eval's results JSON)


@dataclass(frozen=True)
class Evaluator:
    kind: str
    config: type  # the pydantic settings class (a `kind` literal field and its own settings)
    metrics: tuple[MetricSpec, ...]
    headline: str  # the metric a report shows by default
    evaluate: Callable[[EvalInput, Any], EvalOutput]
    needs_model: bool = True  # False: also scores heuristic baselines (their predictions are text)
    # (cell, selection, library, config) -> (errors, warnings), checked by `ablate validate` / before a sweep
    check: Callable[[Any, Any, Any, Any], tuple[list[str], list[str]]] | None = None
    # its per-instance records -> metric -> each instance's score (on the report's scale), for paired comparisons
    instance_scores: Callable[[Sequence[dict]], dict[str, list[float]]] | None = None
    record_fields: frozenset[str] = frozenset()  # fields every record of its artifact has, besides id, task, references
    # Evaluators whose metric keys are their own (lm_eval/<task>/<metric>, known only once a task runs):
    headline_of: Callable[[Any], str] | None = None  # config -> the metric a report shows by default
    metric_spec_of: Callable[[str], MetricSpec] | None = None  # one of its keys -> its declaration
    key_prefix: str | None = None  # the first segment of its keys
    # (cell settings, config, seconds a training step spends per example) -> CPU seconds, for the cost estimate
    estimate_seconds: Callable[[Any, Any, float], float] | None = None

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)
