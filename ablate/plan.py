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
    resolved = settings.model_dump(mode="json", exclude=NOT_IDENTITY)
    resolved["data"]["source"] = settings.data_fingerprint
    if settings.untuned:
        for key in ("train_clusters", "num_train_tasks", "instances_per_task"):
            resolved["data"].pop(key)
        resolved["train"] = {"untuned": True, "max_source_length": settings.train.max_source_length}
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


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
    """Cells of the spec: the product of its axes (test encodings folded into each cell) x seeds."""
    axes = [(key, *expand_axis(spec, key, values)) for key, values in spec.axes.items()]
    folded = [a for a in axes if a[0] == "test_encoding"]
    crossed = [a for a in axes if a[0] != "test_encoding"]
    base = spec.model_dump(mode="json", include={"data", "model", "train", "eval"})
    base["data"]["clusters"] = base["data"]["clusters"] or {k: list(v) for k, v in DEFAULT_CLUSTERS.items()}
    if folded:
        base["eval"]["encodings"] = folded[0][2]
    cells = []
    for combination in itertools.product(*(values for _, _, values in crossed)):
        axis_values = {key: value for (key, _, _), value in zip(crossed, combination)}
        for seed in spec.seeds:
            tree = copy.deepcopy(base)
            values = {**axis_values, "seed": seed}
            order = cluster_order(spec, seed)
            if order is not None:  # the same number of clusters, drawn in this seed's order
                values["train_clusters"] = order[:len(axis_values["train_clusters"])]
            for key, path, _ in crossed:
                _set_path(tree, path, values[key])
            settings = CellSettings.model_validate({**tree, "seed": seed, "data_fingerprint": data_fingerprint})
            cells.append(Cell(id=cell_id(settings), name=cell_name(values), axis_values=values, settings=settings))
    return cells


def plan_errors(spec: SweepSpec, data_fingerprint: str) -> list[str]:
    """Problems that only show once axes are applied (e.g. an axis value a field rejects)."""
    try:
        expand_grid(spec, data_fingerprint)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return []
