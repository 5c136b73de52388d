"""The plan: a pure, deterministic expansion of a spec into cells with stable ids.

A cell's id hashes its fully resolved settings (data fingerprint and seed included; sweep
name, tracking, resources and key order excluded), so two specs holding the same cell share it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.spec import DataSpec, EvalSpec, Frozen, SweepSpec, TrainSpec, cluster_order, expand_axis


class CellSettings(Frozen):
    """Everything that decides a cell's result."""

    data: DataSpec
    model: str
    train: TrainSpec
    eval: EvalSpec
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


# Settings that do not change a cell's result, so not part of its id.
NOT_IDENTITY = {"train": {"save_model", "log_every", "checkpoint_every"}}


def cell_id(settings: CellSettings) -> str:
    """A stable hash of the resolved settings; the data source path is replaced by its fingerprint.
    An untuned cell's training settings do not matter, so every sweep holding it shares its id."""
    return _IdParts().cell_id(settings)


class _IdParts:
    """The canonical JSON of each settings section, made once per section object: a 10,000-cell
    grid shares a few sections, and the default cluster map alone is 3 KB of JSON per cell. The
    id is sha256 of {"data", "data_fingerprint", "eval", "model", "seed", "train"} as sorted,
    compact JSON, which is exactly these parts joined."""

    def __init__(self) -> None:
        # (id of a section, untuned, fingerprint) -> (the section, kept so its id is not reused; its JSON)
        self._parts: dict[tuple, tuple[Any, str]] = {}

    def _part(self, section, untuned: bool, fingerprint: str) -> str:
        key = (id(section), untuned, fingerprint)
        if key not in self._parts:
            resolved = section.model_dump(mode="json", exclude=NOT_IDENTITY.get(_SECTION_NAMES[type(section)]))
            if isinstance(section, DataSpec):
                resolved["source"] = fingerprint
                if untuned:
                    for field in ("train_clusters", "num_train_tasks", "instances_per_task"):
                        resolved.pop(field)
            elif isinstance(section, TrainSpec) and untuned:
                resolved = {"untuned": True, "max_source_length": section.max_source_length}
            self._parts[key] = (section, _canonical(resolved))
        return self._parts[key][1]

    def cell_id(self, settings: CellSettings) -> str:
        untuned, fingerprint = settings.untuned, settings.data_fingerprint
        canonical = (f'{{"data":{self._part(settings.data, untuned, fingerprint)},'
                     f'"data_fingerprint":{_canonical(fingerprint)},'
                     f'"eval":{self._part(settings.eval, untuned, fingerprint)},'
                     f'"model":{_canonical(settings.model)},"seed":{_canonical(settings.seed)},'
                     f'"train":{self._part(settings.train, untuned, fingerprint)}}}')
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


_SECTION_NAMES = {DataSpec: "data", TrainSpec: "train", EvalSpec: "eval"}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def format_value(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value)
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
    for part in parts[:-1]:
        tree = tree[part]
    tree[parts[-1]] = value


def expand_grid(spec: SweepSpec, data_fingerprint: str) -> list[Cell]:
    """Cells of the spec: the product of its axes (test encodings folded into each cell) x seeds.

    Each settings section (data, train, eval) is validated once per distinct set of the axis
    values that reach it, and shared by the cells that hold it."""
    axes = [(key, *expand_axis(spec, key, values)) for key, values in spec.axes.items()]
    folded = [a for a in axes if a[0] == "test_encoding"]
    crossed = [a for a in axes if a[0] != "test_encoding"]
    base = spec.model_dump(mode="json", include={"data", "model", "train", "eval"})
    base["data"]["clusters"] = base["data"]["clusters"] or {k: list(v) for k, v in DEFAULT_CLUSTERS.items()}
    if folded:
        base["eval"]["encodings"] = folded[0][2]
    sections: dict[tuple, Any] = {}
    ids = _IdParts()
    orders = {seed: cluster_order(spec, seed) for seed in spec.seeds}
    owners = {name: [i for i, (_, path, _) in enumerate(crossed) if path.split(".")[0] == name]
              for name in ("data", "model", "train", "eval")}

    def section(name: str, positions: tuple[int, ...], values: dict[str, Any], seed: int):
        """The section `name` of a cell, validated once per combination of the axis values in it."""
        key = (name, tuple(positions[i] for i in owners[name]),
               seed if name == "data" and orders[seed] is not None else None)
        if key not in sections:
            tree = copy.deepcopy(base)
            for i in owners[name]:
                axis, path, _ = crossed[i]
                _set_path(tree, path, values[axis])
            model = {"data": DataSpec, "train": TrainSpec, "eval": EvalSpec}.get(name)
            try:
                sections[key] = tree[name] if model is None else model.model_validate(tree[name])
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
                **{name: section(name, positions, values, seed) for name in ("data", "model", "train", "eval")},
                seed=seed, data_fingerprint=data_fingerprint)
            cells.append(Cell(id=ids.cell_id(settings), name=cell_name(values), axis_values=values, settings=settings))
    return cells


def checked_grid(spec: SweepSpec, data_fingerprint: str) -> tuple[list[Cell], list[str]]:
    """The cells, or the problems that only show once axes are applied (e.g. an axis value a field
    rejects)."""
    try:
        return expand_grid(spec, data_fingerprint), []
    except ValidationError as exc:
        return [], [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
