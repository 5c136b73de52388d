"""Sweep specs: YAML parsed once, at the edge, into frozen pydantic objects.

`load_spec(path, overrides)` reads the YAML, applies `--set key=value` overrides and
validates; every problem found is reported at once as one AblateError (exit code 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator, model_validator

from ablate.errors import AblateError, did_you_mean
from ablate.data.options import DEFAULT_MAX_OPTIONS, INDEX_OPTIONS_LIMIT
from ablate.evaluators import EvaluatorConfig
from ablate.evaluators.generate import GenerateConfig
from ablate.refine_spec import RefineSpec, check_refine, fill_candidates
from ablate.stages import StageConfig
from ablate.stages.sft import SftConfig
from ablate.track.retry import DEFAULT_RETRY_SECONDS
from ablate.typed import NOT_IDENTITY, UNLESS_DEFAULT, AlsoNamed, Frozen


def _cluster_preset(value: Any) -> Any:
    """A named cluster map (`clusters: flan`) as the map it names (ablate.data.flan.PRESETS)."""
    if isinstance(value, str):
        from ablate.data.flan import preset

        try:
            return {name: list(categories) for name, categories in preset("clusters", value).items()}
        except AblateError as exc:
            raise ValueError(exc.message) from None
    return value


def _cluster_preset_names() -> list[str]:
    from ablate.data.flan import PRESETS

    return list(PRESETS["clusters"])


class DataSpec(Frozen):
    source: str = Field(description="'synthetic' (built-in suite), a path to a SuperNI clone, or 'hf:<dataset>'")
    split: str = Field("default", description="splits/<split>/ of the task directory")
    synthetic_seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the built-in synthetic suite")
    clusters: Annotated[dict[str, list[str]] | None, BeforeValidator(_cluster_preset), AlsoNamed(_cluster_preset_names)] = Field(None, min_length=1,
                                                  description="cluster -> categories; null: the default map")
    held_out_clusters: list[str] = Field(default_factory=list,
                                         description="test on every task of these clusters the split lists (train or "
                                                     "test list), train on none of them; empty: the split's test tasks")
    train_clusters: list[str] | None = Field(None, description="train on these clusters; null: all but held-out; "
                                                                "[]: none (the untuned model)")
    num_train_tasks: int | None = Field(None, ge=0, le=1_000_000, description="nested seeded subset of training tasks; null: all; "
                                                                 "0: none (the untuned model)")
    instances_per_task: int = Field(ge=0, le=100_000_000, description="nested seeded sample of training instances per task; "
                                                      "0: none (the untuned model)")
    max_options: int = Field(DEFAULT_MAX_OPTIONS, ge=2, le=INDEX_OPTIONS_LIMIT, json_schema_extra=UNLESS_DEFAULT,
                             description="answer options of a test instance: its own 'options' list, else its task's "
                                         "label set when its references take at most this many distinct values "
                                         "(rank classification; the OPTIONS suffix of options_in_prompt)")

    @property
    def trains_nothing(self) -> bool:
        """No training data: the cell evaluates its model as it is (the untuned starting point)."""
        return self.train_clusters == [] or self.num_train_tasks == 0 or self.instances_per_task == 0


class LoraSpec(Frozen):
    """Parameter-efficient fine-tuning with LoRA adapters (peft); only the adapters train."""

    r: int = Field(8, gt=0, le=4096, description="rank of the adapter matrices")
    alpha: float = Field(16.0, gt=0, le=1e6, description="scaling numerator: updates are scaled by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] | None = Field(None, min_length=1,
                                             description="module names to adapt; null: peft's default for the model type")


class TrainSpec(Frozen):
    steps: int | None = Field(None, ge=0, le=100_000_000, description="optimizer steps (or give epochs); 0: the untuned model")
    epochs: float | None = Field(None, gt=0, le=100_000, description="passes over the cell's training data (or give steps)")
    batch_size: int = Field(gt=0, le=65_536, description="training examples per micro-batch")
    learning_rate: float = Field(gt=0, description="AdamW's peak learning rate")
    schedule: Literal["constant", "linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="the learning rate over the steps (transformers' schedulers): linear and cosine decay "
                              "to 0 at the last step")
    warmup_steps: int = Field(0, ge=0, le=100_000_000, description="steps of linear warm-up from 0 to learning_rate")
    weight_decay: float = Field(0.0, ge=0, le=100, description="AdamW's decoupled weight decay")
    max_source_length: int = Field(gt=0, le=1_048_576, description="model tokens; official truncation rules")
    max_target_length: int = Field(gt=0, le=1_048_576, description="model tokens of a target; longer targets are cut")
    encoding: str = Field(description="training prompt encoding, e.g. def+pos2")
    gradient_accumulation_steps: int = Field(1, gt=0, le=1024,
                                             description="micro-batches of batch_size per optimizer step")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU that supports it, else fp32; fp16 (GPU only) uses a grad scaler")
    lora: LoraSpec | None = Field(None, description="LoRA adapters (peft); null: full fine-tuning")
    log_every: int = Field(10, gt=0, le=100_000_000, description="log the training loss every N steps",
                           json_schema_extra=NOT_IDENTITY)
    checkpoint_every: int = Field(200, gt=0, le=100_000_000, description="report a resumable checkpoint every N steps",
                                  json_schema_extra=NOT_IDENTITY)
    options_in_prompt: bool = Field(False, json_schema_extra=UNLESS_DEFAULT,
                                    description="FLAN's format: training sources of tasks with answer options end with "
                                                "OPTIONS: and one '- option' line each")
    save_model: bool = Field(False, description="log the trained model (or LoRA adapter) to the cell's run, "
                                                "loadable with transformers' from_pretrained",
                             json_schema_extra=NOT_IDENTITY)

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> "TrainSpec":
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'steps' and 'epochs'")
        return self

    @field_validator("encoding")
    @classmethod
    def _valid_encoding(cls, value: str) -> str:
        return _check_encoding(value)


class EvalSpec(Frozen):
    encodings: list[str] | None = Field(None, description="test encodings; null: the training encoding")
    instances_per_task: int = Field(100, gt=0, le=10_000_000, description="first N instances of each test task (official: 100)")
    max_new_tokens: int = Field(32, gt=0, le=65_536, description="generated tokens per answer, at most")
    num_beams: int = Field(1, gt=0, le=64, description="1: greedy decoding")
    batch_size: int = Field(64, gt=0, le=65_536, description="test instances per generation batch")
    options_in_prompt: bool = Field(False, json_schema_extra=UNLESS_DEFAULT,
                                    description="FLAN's format: test sources of tasks with answer options end with "
                                                "OPTIONS: and one '- option' line each")
    evaluators: list[EvaluatorConfig] = Field(
        default_factory=lambda: [GenerateConfig()], min_length=1, json_schema_extra=UNLESS_DEFAULT,
        description="how the model is scored on each test encoding, in order (the first gives the run's headline): "
                    "generate (official SuperNI metrics; max_new_tokens, num_beams, batch_size above are its decoding)")

    @field_validator("evaluators")
    @classmethod
    def _distinct_evaluators(cls, value: list) -> list:
        kinds = [e.kind for e in value]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"an evaluator is listed twice ({', '.join(kinds)}); list each kind once")
        return value

    @field_validator("encodings")
    @classmethod
    def _valid_encodings(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one test encoding, or null for the training encoding")
            for name in value:
                _check_encoding(name)
        return value


class ResourcesSpec(Frozen):
    cpus_per_cell: float = Field(1, gt=0, le=1024, description="CPUs Ray reserves per cell (its torch threads)")
    gpus_per_cell: float = Field(0, ge=0, le=64, description="GPUs per cell; a fraction (e.g. 0.25) lets cells share a GPU")
    max_concurrent: int = Field(2, gt=0, le=10_000, description="cells running at once")
    max_failures: int = Field(1, ge=0, le=100, description="retries of a cell whose worker died (from its checkpoint)")
    confirm_over_cells: int = Field(500, gt=0, description="a sweep with more cells to run asks for --yes")
    storage_path: str | None = Field(None, min_length=1, max_length=2000,
                                     description="where Tune keeps trial folders and checkpoints: a folder every "
                                                 "node mounts, or a URI such as s3://bucket/path; null: "
                                                 "ablate_runs/NAME/ray on this machine (one machine only)")
    confirm_over_hours: float = Field(24.0, gt=0, le=1e6,
                                      description="a sweep whose estimated wall time is longer asks for --yes")

    @field_validator("gpus_per_cell")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("more than one GPU per cell must be a whole number (Ray shares only fractions of one GPU)")
        return value


class TrackingSpec(Frozen):
    experiment: str | None = Field(None, min_length=1, max_length=500, description="MLflow experiment; null: the sweep name")
    tracking_uri: str | None = Field(None, min_length=1, description="null: sqlite:///mlflow.db in the working directory")
    retry_seconds: float = Field(DEFAULT_RETRY_SECONDS, ge=0, le=604_800, description="how long cells wait out an unreachable tracking store")


class CumulativeClusters(Frozen):
    cumulative: list[str] = Field(min_length=1, description="clusters added one at a time, in this order")
    from_none: bool = Field(False, description="start the curve at no cluster: the untuned model (FLAN Fig. 4's zero)")
    order: Literal["fixed", "random"] = Field(
        "fixed", description="fixed: add clusters in the order listed; random: in a seeded order drawn per seed, so "
                             "'number of clusters' is not confounded with which cluster was added")


# Schedules under which the first s steps of a longer training are exactly an s-step training
# (a decaying schedule's learning rate at step s depends on the total), so steps can be folded.
FOLDABLE_SCHEDULES = ("constant", "constant_with_warmup")
FOLDABLE_AXIS = "train.steps"


class FoldedSteps(Frozen):
    """A train.steps axis trained once per cell: one training to the largest number of steps is
    evaluated at each listed one, and each point is logged as the cell it stands for (ablate/fold.py)."""
    values: list[Any] = Field(min_length=1, description="the numbers of steps, as a list axis takes them")
    fold: bool = Field(strict=True, description="true: train once to the largest and evaluate at each; false: one training each")


def folded_axis(spec: "SweepSpec") -> str | None:
    """The axis whose values one training serves (`train.steps: {values: [...], fold: true}`), or None."""
    axis = spec.axes.get(FOLDABLE_AXIS)
    return FOLDABLE_AXIS if isinstance(axis, dict) and axis.get("fold") is True else None


def _check_fold(spec: "SweepSpec") -> None:
    """A folded axis gives exactly the scores of separate trainings, or it is refused."""
    if spec.train.schedule not in FOLDABLE_SCHEDULES:
        raise ValueError(f"folding {FOLDABLE_AXIS} needs a schedule whose first steps do not depend on the total "
                         f"({' or '.join(FOLDABLE_SCHEDULES)}), but train.schedule is '{spec.train.schedule}'; set "
                         "train.schedule: constant (or constant_with_warmup), or give the axis as a plain list")
    if [s.kind for s in spec.stages] != ["sft"] or "stages" in spec.axes:
        raise ValueError(f"folding {FOLDABLE_AXIS} evaluates during supervised fine-tuning, so the cells must have "
                         "one stage, sft; give the axis as a plain list to train each cell with later stages")
    if spec.refine is not None:
        raise ValueError(f"a refinement proposes cells one round at a time, and a folded {FOLDABLE_AXIS} axis trains "
                         "them together; give the axis as a plain list (or drop the refine block)")


class LeaveOneClusterOut(Frozen):
    """FLAN's evaluation: one model per held-out cluster, trained on every other cluster except
    those excluded with it (e.g. paraphrase with NLI)."""

    leave_one_out: list[str] | str = Field(description="the clusters to hold out one at a time, or a preset "
                                                        "(flan: nli, commonsense, closed_book_qa)")
    exclude_together: list[list[str]] | str = Field(
        default_factory=list, description="groups of clusters excluded together, or a preset (flan: FLAN's "
                                          "nli/paraphrase and reading-comprehension/commonsense groups)")

    def values(self, cluster_map: dict) -> list[tuple[str, list[str]]]:
        """(held-out cluster, training clusters) per value, in order."""
        from ablate.data.flan import loo_values, preset

        held_out = preset("held_out", self.leave_one_out) if isinstance(self.leave_one_out, str) else self.leave_one_out
        groups = preset("exclusions", self.exclude_together) if isinstance(self.exclude_together, str) \
            else self.exclude_together
        universe = list(cluster_map)
        # A preset's groups may name clusters a custom map does not have: those groups do not apply.
        groups = [g for g in groups if all(c in universe for c in g)] if isinstance(self.exclude_together, str) else groups
        return loo_values(list(held_out), groups, universe=universe, field="axes.held_out_cluster")


def _cluster_map_of(spec: "SweepSpec") -> dict:
    from ablate.data.clusters import DEFAULT_CLUSTERS

    return dict(spec.data.clusters or DEFAULT_CLUSTERS)


def axis_patch(spec: "SweepSpec", key: str, path: str, value: Any) -> dict[str, Any]:
    """The settings one axis value sets, by dotted path: one path for most axes; a held-out
    cluster sets both the held-out clusters and the clusters to train on."""
    if key == "held_out_cluster":
        train = dict(LeaveOneClusterOut.model_validate(spec.axes[key]).values(_cluster_map_of(spec)))[value]
        return {"data.held_out_clusters": [value], "data.train_clusters": train}
    return {path: value}


def cluster_order(spec: "SweepSpec", seed: int) -> list[str] | None:
    """The order in which a cumulative train_clusters axis adds clusters for one seed; None when
    the axis is not cumulative with a random order."""
    import random

    axis = spec.axes.get("train_clusters")
    if not isinstance(axis, dict):
        return None
    order = CumulativeClusters.model_validate(axis)
    if order.order != "random":
        return None
    shuffled = list(order.cumulative)
    random.Random(f"{seed}:cluster-order").shuffle(shuffled)
    return shuffled


@dataclass(frozen=True)
class AxisKind:
    """A named axis: the setting its values set, and what it varies (the docs' registries page)."""

    path: str
    description: str


AXIS_KINDS: dict[str, AxisKind] = {
    "train_clusters": AxisKind("data.train_clusters", "the clusters trained on: a list of cluster lists, or "
                               "{cumulative: [c1, c2, ...]} to add them one at a time (FLAN Fig. 4); a value counts "
                               "its clusters"),
    "num_train_tasks": AxisKind("data.num_train_tasks", "the number of training tasks (a nested seeded subset; "
                                "0: the untuned model)"),
    "instances_per_task": AxisKind("data.instances_per_task", "the training instances per task (a nested seeded "
                                   "sample; 0: the untuned model)"),
    "model": AxisKind("model", "the model: presets, hf:<name> or local folders (their parameter count is the "
                      "curve's x)"),
    "train_encoding": AxisKind("train.encoding", "the training prompt encoding (def, pos2, def+pos2, ...)"),
    "test_encoding": AxisKind("eval.encodings", "the test encodings; folded: each cell evaluates every one, the "
                              "columns of the training x testing matrix"),
    "stages": AxisKind("stages", "the training stages themselves, e.g. [[sft], [sft, dpo]]"),
    "held_out_cluster": AxisKind("data.held_out_clusters", "leave-one-cluster-out: {leave_one_out: [...] or flan, "
                                 "exclude_together: [[...]] or flan}; one model per held-out cluster, trained on "
                                 "every other cluster but those excluded with it"),
}
AXIS_PATHS = {name: axis.path for name, axis in AXIS_KINDS.items()}


NAME_PATTERN, NAME_LENGTH = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", 100  # a sweep's name: an experiment's and a folder's


class SweepSpec(Frozen):
    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_LENGTH,
                      description="sweep (and experiment) name; also a folder name")
    data: DataSpec = Field(description="the task data, the clusters and what each cell trains and tests on")
    model: str = Field(description="preset (t5-tiny, ...), baseline (copy_demo, copy_input), hf:<name> or a local path")
    train: TrainSpec = Field(description="supervised fine-tuning (the sft stage) and the prompts' format")
    eval: EvalSpec = Field(EvalSpec(), description="the test set, its encodings and the evaluators")
    stages: list[StageConfig] = Field(
        default_factory=lambda: [SftConfig()], min_length=1, json_schema_extra=UNLESS_DEFAULT,
        description="training stages, in order, each on the model the one before left: sft (settings: train)")
    seeds: list[Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]] = Field(
        min_length=1, description="whole numbers from 0 to 2**31 - 1 (torch's seeds)")
    resources: ResourcesSpec = Field(ResourcesSpec(), description="what each cell gets on Ray and how many run at "
                                                                  "once (never part of a cell's id)")
    tracking: TrackingSpec = Field(TrackingSpec(), description="the MLflow store and experiment (never part of a "
                                                               "cell's id)")
    axes: dict[str, Any] = Field(default_factory=dict, description="axis name or dotted path -> values")
    refine: RefineSpec | None = Field(None, json_schema_extra=NOT_IDENTITY,
                                      description="an adaptive design over one axis (ablate/refine_spec.py); "
                                                  "null: the whole grid")

    @model_validator(mode="before")
    @classmethod
    def _refine_candidates(cls, raw: Any) -> Any:
        return fill_candidates(raw)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from ablate.model import check_model_name

        check_model_name(value)
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("seeds repeat; list each seed once")
        return value

    @model_validator(mode="after")
    def _check_axes(self) -> "SweepSpec":
        # Checked here, with the whole spec at hand; the message names its own field (axes.KEY).
        for key, values in self.axes.items():
            try:
                expand_axis(self, key, values)
            except ValueError as exc:
                raise ValueError(f"axes.{key}: {exc}") from None
        if self.refine is not None:
            try:
                check_refine(self.refine, self.axes, self.seeds)
            except ValueError as exc:
                raise ValueError(f"refine: {exc}") from None
        return self


def _check_encoding(value: str) -> str:
    from ablate.data.encoding import parse_encoding

    try:
        parse_encoding(value)
    except AblateError as exc:
        raise ValueError(exc.as_item()) from None
    return value


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (`LoraSpec` for `LoraSpec | None`), or None for a plain value."""
    import typing

    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_at(path: str) -> tuple[type[BaseModel], str] | None:
    """The pydantic model class and field name a dotted path ends in, or None if it does not exist."""
    model: type[BaseModel] = SweepSpec
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            return None
        if i == len(parts) - 1:
            return model, part
        inner = _submodel(model.model_fields[part].annotation)
        if inner is None:
            return None
        model = inner
    return None


def expand_axis(spec: SweepSpec, key: str, values: Any) -> tuple[str, list[Any]]:
    """An axis as (settings path, list of values); raises ValueError with the fix on a bad axis."""
    path = AXIS_PATHS.get(key, key)
    if ".lora." in f".{key}." and key != "train.lora" and spec.train.lora is None:
        raise ValueError(f"axis '{key}' varies a LoRA setting, but train.lora is null (full fine-tuning); "
                         "give train.lora (e.g. {r: 8}) in the spec")
    if key.split(".")[0] in ("resources", "tracking", "seeds", "name", "axes"):
        raise ValueError(f"'{key}' cannot be an axis: only settings that change a cell's result can "
                         "(resources and tracking are the same for every cell; seeds are crossed already)")
    if key.startswith("stages."):  # stages.<kind>.<field>: a setting of the stage of that kind
        _check_stage_axis(spec, key)
    elif key not in AXIS_PATHS and (_field_at(key) is None or "." not in key):
        raise ValueError(f"unknown axis '{key}'. {did_you_mean(key, list(AXIS_PATHS))} "
                         "Or give a dotted path to a setting, e.g. train.learning_rate")
    if key == "held_out_cluster":
        if not isinstance(values, dict):
            raise ValueError("axis 'held_out_cluster' takes {leave_one_out: [clusters] or flan, "
                             "exclude_together: [[c1, c2], ...] or flan}")
        try:
            values = [c for c, _ in LeaveOneClusterOut.model_validate(values).values(_cluster_map_of(spec))]
        except AblateError as exc:
            raise ValueError(exc.as_item()) from None
        return path, values
    if isinstance(values, dict) and "fold" in values:
        if key != FOLDABLE_AXIS:
            raise ValueError(f"only {FOLDABLE_AXIS} can be folded (one training evaluated at each of its values); "
                             f"give axis '{key}' as a list of values")
        try:
            folded = FoldedSteps.model_validate(values)
        except ValidationError as exc:
            from ablate.errors import validation_problems

            wrong = "; ".join(line.rstrip(".") for line in validation_problems(exc, FoldedSteps))
            raise ValueError(f"a folded axis is {{values: [n1, n2, ...], fold: true or false}} ({wrong})") from None
        if folded.fold:
            _check_fold(spec)
        values = folded.values
    if key == "train_clusters" and isinstance(values, dict):
        order = CumulativeClusters.model_validate(values)
        start = 0 if order.from_none else 1
        values = [order.cumulative[:i] for i in range(start, len(order.cumulative) + 1)]
    if not isinstance(values, list) or not values:
        raise ValueError(f"axis '{key}' needs a non-empty list of values")
    if key == "train_clusters" and not all(isinstance(v, list) for v in values):
        raise ValueError("axis 'train_clusters' takes a list of cluster lists ([] for the untuned model), "
                         "or {cumulative: [c1, c2, ...]} to add clusters one at a time")
    target = _field_at(path)
    takes_block = target is not None and _submodel(target[0].model_fields[target[1]].annotation) is not None
    if takes_block:  # e.g. train.lora: [null, {r: 8}]: full fine-tuning vs LoRA
        if not all(v is None or isinstance(v, dict) for v in values):
            raise ValueError(f"axis '{key}' takes mappings of its fields (or null), e.g. [null, {{r: 8}}]")
    elif key == "stages":
        if not all(isinstance(v, list) and v for v in values):
            raise ValueError("axis 'stages' takes lists of stages, e.g. [[sft], [sft, dpo]]")
    elif key not in ("train_clusters", "test_encoding"):
        if any(isinstance(v, (list, dict)) for v in values):
            raise ValueError(f"axis '{key}' takes scalar values, got a list or mapping")
    repeat = _repeated_setting(path, values)
    if repeat is not None:
        first, again = repeat
        same = "twice" if repr(first) == repr(again) else f"as {first!r} and as {again!r}, the same setting once read"
        raise ValueError(f"axis '{key}' repeats a value ({again!r}, {same}), so two of its cells would be one")
    return path, values


def _repeated_setting(path: str, values: list[Any]) -> tuple[Any, Any] | None:
    """The first two values of an axis that are the same setting once validated as the field they
    set (8 and 8.0 for an integer field, 0.001 and 1.0e-3, two spellings of one LoRA block), or
    None. A value the field refuses is compared as written; its own error comes with the cells."""
    from pydantic import TypeAdapter

    target = _field_at(path)
    adapter = None
    if target is not None:
        info = target[0].model_fields[target[1]]
        adapter = TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)
    seen: dict[str, Any] = {}
    for value in values:
        try:
            canonical = adapter.dump_json(adapter.validate_python(value)).decode() if adapter else repr(value)
        except (ValidationError, TypeError, ValueError):
            canonical = repr(value)
        if canonical in seen:
            return seen[canonical], value
        seen[canonical] = value
    return None


def _check_stage_axis(spec: SweepSpec, key: str) -> None:
    """An axis `stages.<kind>.<field>` names a field of a stage the spec's stages list (once)."""
    from ablate.stages import STAGES

    parts = key.split(".")
    kinds = [s.kind for s in spec.stages]
    if len(parts) != 3 or parts[1] not in STAGES:
        raise ValueError(f"a stage axis is stages.<kind>.<field>, e.g. stages.dpo.beta; got '{key}'. "
                         f"{did_you_mean(parts[1] if len(parts) > 1 else '', list(STAGES))}")
    if kinds.count(parts[1]) != 1:
        raise ValueError(f"axis '{key}' varies the {parts[1]} stage, but the spec's stages ({', '.join(kinds)}) "
                         f"list it {kinds.count(parts[1])} times; list it once in stages")
    fields = [f for f in STAGES[parts[1]].config.model_fields if f != "kind"]
    if parts[2] not in fields:
        raise ValueError(f"the {parts[1]} stage has no setting '{parts[2]}'. {did_you_mean(parts[2], fields)}")
    if "stages" in spec.axes:
        raise ValueError(f"axis '{key}' cannot be crossed with the 'stages' axis (a cell without the "
                         f"{parts[1]} stage would repeat once per value); list the variants as stages values, e.g. "
                         "[[sft], [sft, {kind: dpo, beta: 0.1}], [sft, {kind: dpo, beta: 0.5}]]")


def format_validation_error(exc: ValidationError, file: str) -> AblateError:
    """All pydantic errors at once, each with its field path and a fix."""
    from ablate.errors import problem_list, validation_problems

    return problem_list(validation_problems(exc, SweepSpec), what="in the sweep spec", file=file,
                        fix="correct the fields above; `ablate validate SPEC` checks a spec without running it.")


def apply_override(raw: dict, assignment: str, file: str) -> None:
    """Apply one `--set a.b.c=value` to the raw YAML mapping; the value is parsed as YAML."""
    if "=" not in assignment:
        raise AblateError(f"--set '{assignment}' has no '='.", file=file, fix="write --set key.path=value.")
    path, text = assignment.split("=", 1)
    if _field_at(path) is None and not path.startswith("axes."):
        raise AblateError(f"--set names '{path}', which is not a spec field.", file=file, field=path,
                          fix="use a dotted path to an existing field, e.g. train.steps=100 or seeds=[0,1].")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    target = raw
    # An axis key is itself a dotted path (axes.train.learning_rate): everything after "axes." is one key.
    parts = ["axes", path[len("axes."):]] if path.startswith("axes.") else path.split(".")
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[parts[-1]] = value


def read_yaml(path: str | Path) -> dict:
    from ablate.files import load_yaml

    raw = load_yaml(path, "the spec", "check the path; shipped specs are in sweeps/.")
    if not isinstance(raw, dict):
        raise AblateError("the spec must be a YAML mapping of fields.", file=str(path),
                          fix="start from a shipped spec in sweeps/.")
    return raw


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = (), workdir: Path | None = None) -> SweepSpec:
    """The validated spec, with relative paths (data source, model folders) made absolute against
    `workdir` (the working directory by default): Ray workers run elsewhere, and must see the
    same folders."""
    raw = read_yaml(path)
    for assignment in overrides:
        apply_override(raw, assignment, str(path))
    _absolute_paths(raw, Path(workdir or Path.cwd()))
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise format_validation_error(exc, str(path)) from None


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and ("/" in value or value.startswith(".")) and not value.startswith("hf:")


def _absolute_paths(raw: dict, workdir: Path) -> None:
    """Make the raw spec's local paths absolute (before validation, so checks see the real folder)."""
    def absolute(value: Any) -> Any:
        return str((workdir / value).resolve()) if _is_local_path(value) and not Path(value).is_absolute() else value

    data = raw.get("data")
    if isinstance(data, dict) and "source" in data:
        data["source"] = absolute(data["source"])
    if "model" in raw:
        raw["model"] = absolute(raw["model"])
    resources = raw.get("resources")
    if isinstance(resources, dict) and isinstance(resources.get("storage_path"), str) \
            and "://" not in resources["storage_path"]:
        resources["storage_path"] = str((workdir / resources["storage_path"]).resolve())
    stages = raw.get("stages")  # anything but a list is left to the field's own error
    for stage in stages if isinstance(stages, list) else []:  # a stage's file (dpo's preference pairs)
        if isinstance(stage, dict) and isinstance(stage.get("source"), str) and not Path(stage["source"]).is_absolute():
            stage["source"] = str((workdir / stage["source"]).resolve())
    evaluators = raw.get("eval", {}).get("evaluators") if isinstance(raw.get("eval"), dict) else None
    for entry in evaluators if isinstance(evaluators, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("include_path"), str):  # lm_eval's task folder
            entry["include_path"] = str((workdir / entry["include_path"]).resolve())
    axes = raw.get("axes")
    if isinstance(axes, dict):
        for key in ("model", "data.source"):
            if isinstance(axes.get(key), list):
                axes[key] = [absolute(v) for v in axes[key]]


def spec_to_yaml(spec: SweepSpec) -> str:
    """The resolved spec as ablate stores it (ablate_runs/NAME/ and the parent run): a password in
    a URI shown as *** (the sweep itself reads it from the environment, ablate.credentials)."""
    from ablate.credentials import redact, split_credentials

    tree = spec.model_dump(mode="json")
    uri = tree["tracking"]["tracking_uri"]
    if uri:
        try:
            tree["tracking"]["tracking_uri"] = split_credentials(uri)[0]  # as the sweep resolved it
        except ValueError:
            tree["tracking"]["tracking_uri"] = redact(uri)
    return redact(yaml.safe_dump(tree, sort_keys=False))
