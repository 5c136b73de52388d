"""The plan: a pure, deterministic expansion of a spec into cells with stable ids.

A cell's id hashes its fully resolved settings (data fingerprint and seed included; sweep
name, tracking, resources and key order excluded), so two specs holding the same cell share it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.spec import DataSpec, EvalSpec, SweepSpec, TrainSpec, axis_patch, cluster_order, expand_axis
from ablate.stages import StageConfig
from ablate.stages.sft import SftConfig
from ablate.typed import UNLESS_DEFAULT, Frozen


class CellSettings(Frozen):
    """Everything that decides a cell's result."""

    data: DataSpec
    model: str
    train: TrainSpec
    eval: EvalSpec
    stages: list[StageConfig] = Field(default_factory=lambda: [SftConfig()], min_length=1,
                                      json_schema_extra=UNLESS_DEFAULT)
    seed: int
    data_fingerprint: str

    @property
    def test_encodings(self) -> list[str]:
        return list(self.eval.encodings or [self.train.encoding])

    @property
    def cluster_map(self) -> dict[str, list[str]]:
        return dict(self.data.clusters or {})

    @property
    def untuned(self) -> bool:
        """The cell evaluates its model without instruction tuning (no steps, or no training data)."""
        return self.train.steps == 0 or self.data.trains_nothing


@dataclass(frozen=True)
class Cell:
    id: str
    name: str
    axis_values: dict[str, Any]
    settings: CellSettings

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "axis_values": self.axis_values,
                "settings": self.settings.model_dump(mode="json")}

    @classmethod
    def from_json(cls, saved: dict) -> "Cell":
        """The inverse of `to_json` (a plan read back from disk, MLflow or a Ray trial's config)."""
        return cls(id=saved["id"], name=saved["name"], axis_values=dict(saved["axis_values"]),
                   settings=CellSettings.model_validate(saved["settings"]))


def cell_id(settings: CellSettings) -> str:
    """A stable hash of the resolved settings (see `CellIdentity`)."""
    return CellIdentity().cell_id(settings)


def identity_tree(value: Any) -> Any:
    """The part of a settings object that decides a result, as JSON: every field, except those
    declared `NOT_IDENTITY` and those declared `UNLESS_DEFAULT` left at their default (settings
    added after cells were cached under their ids: a cell that does not use them keeps its id)."""
    if isinstance(value, BaseModel):
        tree = {}
        for name, info in type(value).model_fields.items():
            rule = (info.json_schema_extra or {}).get("identity") if isinstance(info.json_schema_extra, dict) else None
            field_value = getattr(value, name)
            if rule == "never" or (rule == "unless_default" and field_value == info.get_default(call_default_factory=True)):
                continue
            tree[name] = identity_tree(field_value)
        return tree
    if isinstance(value, (list, tuple)):
        return [identity_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: identity_tree(v) for k, v in value.items()}
    return value


# An untuned cell (no training) is the same whatever its training would have been: these parts of
# its settings are left out of its id, so every sweep that holds it shares it.
UNTUNED_DATA_FIELDS = ("train_clusters", "num_train_tasks", "instances_per_task")


class CellIdentity:
    """A cell's id: sha256 of the canonical (sorted, compact) JSON of `identity_tree(settings)`,
    with the data source replaced by its fingerprint and an untuned cell's training left out.

    The canonical JSON of each settings section is made once per section object: a 10,000-cell
    grid shares a few sections, and the default cluster map alone is 3 KB of JSON per cell."""

    def __init__(self) -> None:
        # (field, id of a section, untuned, fingerprint) -> (the section, kept so its id is not reused; its JSON)
        self._parts: dict[tuple, tuple[Any, str | None]] = {}

    def _part(self, name: str, section: Any, settings: CellSettings) -> str | None:
        untuned, fingerprint = settings.untuned, settings.data_fingerprint
        key = (name, id(section), untuned, fingerprint)
        if key not in self._parts:
            self._parts[key] = (section, self._canonical_part(name, section, untuned, fingerprint))
        return self._parts[key][1]

    @staticmethod
    def _canonical_part(name: str, section: Any, untuned: bool, fingerprint: str) -> str | None:
        info = CellSettings.model_fields[name]
        rule = (info.json_schema_extra or {}).get("identity")
        if rule == "never" or (rule == "unless_default" and section == info.get_default(call_default_factory=True)):
            return None
        if untuned and name == "stages":
            return None
        resolved = identity_tree(section)
        if name == "data":
            resolved["source"] = fingerprint
            if untuned:
                for field_name in UNTUNED_DATA_FIELDS:
                    resolved.pop(field_name)
        elif name == "train" and untuned:
            resolved = {"untuned": True, "max_source_length": section.max_source_length}
        return _canonical(resolved)

    def cell_id(self, settings: CellSettings) -> str:
        parts = []
        for name in sorted(CellSettings.model_fields):
            part = self._part(name, getattr(settings, name), settings)
            if part is not None:
                parts.append(f"{_canonical(name)}:{part}")
        return hashlib.sha256(("{" + ",".join(parts) + "}").encode()).hexdigest()[:12]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def format_value(value: Any) -> str:
    if isinstance(value, list):  # a stage given as a mapping by its kind and settings: dpo(beta=0.5)
        return "+".join(f"{v['kind']}({format_value({k: x for k, x in v.items() if k != 'kind'})})"
                        if isinstance(v, dict) and "kind" in v else str(v) for v in value)
    if isinstance(value, dict):  # a block such as train.lora: {r: 16, alpha: 32} -> r=16,alpha=32
        return ",".join(f"{k}={v}" for k, v in value.items())
    if value is None:
        return "null"
    return str(value)


def _name_part(axis: str, value: Any) -> str:
    """One axis in a run name, short enough for the MLflow runs table: `clusters=3 (+summarization)`,
    `learning_rate=0.001` (a dotted path by its last part); full values stay in params and tags."""
    if axis == "train_clusters" and isinstance(value, list):
        return f"clusters={len(value)} (+{value[-1]})" if value else "clusters=0 (untuned)"
    return f"{axis.rsplit('.', 1)[-1]}={format_value(value)}"


def cell_name(axis_values: dict[str, Any]) -> str:
    return " ".join(_name_part(k, v) for k, v in axis_values.items()) or "base"


def _set_path(tree: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    if parts[0] == "stages" and len(parts) == 3:  # stages.<kind>.<field>: the stage of that kind
        stages = tree["stages"]
        position = next(i for i, s in enumerate(stages) if (s if isinstance(s, str) else s["kind"]) == parts[1])
        stages[position] = {**({"kind": stages[position]} if isinstance(stages[position], str) else stages[position]),
                            parts[2]: value}
        return
    for part in parts[:-1]:
        tree = tree[part]
    tree[parts[-1]] = value


# The sections of a cell's settings that come from the spec (seed and fingerprint are the plan's).
SECTIONS = tuple(name for name in CellSettings.model_fields if name not in ("seed", "data_fingerprint"))


@functools.lru_cache(maxsize=None)
def _section_type(name: str) -> TypeAdapter:
    return TypeAdapter(CellSettings.model_fields[name].annotation)


def expand_grid(spec: SweepSpec, data_fingerprint: str) -> list[Cell]:
    """Cells of the spec: the product of its axes (test encodings folded into each cell) x seeds.

    Each settings section (data, train, eval) is validated once per distinct set of the axis
    values that reach it, and shared by the cells that hold it."""
    axes = [(key, *expand_axis(spec, key, values)) for key, values in spec.axes.items()]
    folded = [a for a in axes if a[0] == "test_encoding"]
    crossed = [a for a in axes if a[0] != "test_encoding"]
    base = spec.model_dump(mode="json", include=set(SECTIONS))
    base["data"]["clusters"] = base["data"]["clusters"] or {k: list(v) for k, v in DEFAULT_CLUSTERS.items()}
    if folded:
        base["eval"]["encodings"] = folded[0][2]
    sections: dict[tuple, Any] = {}
    ids = CellIdentity()
    orders = {seed: cluster_order(spec, seed) for seed in spec.seeds}
    owners = {name: [i for i, (_, path, _) in enumerate(crossed) if path.split(".")[0] == name] for name in SECTIONS}

    def section(name: str, positions: tuple[int, ...], values: dict[str, Any], seed: int):
        """The section `name` of a cell, validated once per combination of the axis values in it."""
        key = (name, tuple(positions[i] for i in owners[name]),
               seed if name == "data" and orders[seed] is not None else None)
        if key not in sections:
            tree = copy.deepcopy(base)
            for i in owners[name]:
                axis, path, _ = crossed[i]
                for target, value in axis_patch(spec, axis, path, values[axis]).items():
                    _set_path(tree, target, value)
            try:
                sections[key] = _section_type(name).validate_python(tree[name])
            except ValidationError:  # raised again by the whole cell, so its fields read "train.steps"
                CellSettings.model_validate({**tree, "seed": seed, "data_fingerprint": data_fingerprint})
                raise
        return sections[key]

    cells = []
    for positions in itertools.product(*(range(len(values)) for _, _, values in crossed)):
        axis_values = {key: values[i] for (key, _, values), i in zip(crossed, positions)}
        for seed in spec.seeds:
            values = {**axis_values, "seed": seed}
            if orders[seed] is not None:  # the same number of clusters, drawn in this seed's order
                values["train_clusters"] = orders[seed][:len(axis_values["train_clusters"])]
            settings = CellSettings.model_construct(
                **{name: section(name, positions, values, seed) for name in SECTIONS},
                seed=seed, data_fingerprint=data_fingerprint)
            cells.append(Cell(id=ids.cell_id(settings), name=cell_name(values), axis_values=values, settings=settings))
    return cells


def checked_grid(spec: SweepSpec, data_fingerprint: str) -> tuple[list[Cell], list[str]]:
    """The cells, or the problems that only show once axes are applied (e.g. an axis value a field
    rejects)."""
    try:
        return expand_grid(spec, data_fingerprint), []
    except ValidationError as exc:
        from ablate.errors import validation_problems

        return [], validation_problems(exc, CellSettings)


@dataclass(frozen=True)
class PlanRound:
    """One round of a sweep: which proposer proposed which cells, and why."""

    index: int  # 0 first
    proposer: str
    cell_ids: tuple[str, ...]
    reasons: dict[str, str]

    def to_json(self) -> dict:
        return {"round": self.index, "proposer": self.proposer, "cells": list(self.cell_ids), "reasons": self.reasons}

    @classmethod
    def from_json(cls, saved: dict) -> "PlanRound":
        return cls(saved["round"], saved["proposer"], tuple(saved["cells"]), dict(saved.get("reasons", {})))


@dataclass
class SweepPlan:
    """The plan a sweep records (plan.json, locally and in its parent run): every cell it holds
    (the union of its rounds, and the cells known before the first round) and each round so far.
    Plans written before rounds existed read back with no rounds."""

    sweep: str
    cells: list[Cell]
    rounds: list[PlanRound] = field(default_factory=list)

    def add_round(self, proposer: str, cells: list[Cell], reasons: dict[str, str]) -> PlanRound:
        known = {c.id for c in self.cells}
        self.cells.extend(c for c in cells if c.id not in known)
        added = PlanRound(len(self.rounds), proposer, tuple(c.id for c in cells), dict(reasons))
        self.rounds.append(added)
        return added

    def round_of(self) -> dict[str, int]:
        """The round that first proposed each cell."""
        first: dict[str, int] = {}
        for planned in self.rounds:
            for cell_id in planned.cell_ids:
                first.setdefault(cell_id, planned.index)
        return first

    def to_json(self) -> dict:
        return {"sweep": self.sweep, "cells": [c.to_json() for c in self.cells],
                "rounds": [r.to_json() for r in self.rounds]}

    @classmethod
    def from_json(cls, saved: dict) -> "SweepPlan":
        return cls(saved["sweep"], [Cell.from_json(c) for c in saved["cells"]],
                   [PlanRound.from_json(r) for r in saved.get("rounds", [])])
