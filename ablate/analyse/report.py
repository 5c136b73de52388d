"""`ablate report`: a sweep's MLflow runs -> points (mean, 95% CI over seeds), fits, knees, baselines.

`build_report` is pure (records in, numbers out); `baseline_scores` reads task data; writing
figures and logging them to the parent run happen in `publish_report`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ablate.analyse.collect import CellRecord, SweepRecords
from ablate.analyse.stats import curve_summary, point_stats
from ablate.track import metric_key

MEAN_LINE = "mean"
X_LABELS = {
    "train_clusters": "number of training clusters",
    "num_train_tasks": "number of training tasks",
    "instances_per_task": "training instances per task",
    "model": "model parameters",
}
COUNT_AXES = {"train_clusters", "num_train_tasks", "instances_per_task", "model"}


def varying_axes(cells: list[CellRecord]) -> list[str]:
    """Axes (other than the seed) that take more than one value in the plan, in plan order."""
    names: list[str] = []
    for cell in cells:
        for key in cell.axis_values:
            if key != "seed" and key not in names:
                names.append(key)
    return [k for k in names if len({repr(c.axis_values.get(k)) for c in cells}) > 1]


def test_encodings(cells: list[CellRecord]) -> list[str]:
    settings = cells[0].settings
    return list(settings["eval"]["encodings"] or [settings["train"]["encoding"]])


def line_values(metrics: dict[str, float], encoding: str, metric: str) -> dict[str, float]:
    """Per-cluster scores of one run and their mean (the overall score when no cluster is known)."""
    prefix = metric_key(encoding, "cluster") + "/"
    clusters = {k[len(prefix):-len(metric) - 1]: v for k, v in metrics.items()
                if k.startswith(prefix) and k.endswith("/" + metric)}
    overall = metrics.get(metric_key(encoding, metric))
    if clusters:
        return {MEAN_LINE: sum(clusters.values()) / len(clusters), **clusters}
    return {MEAN_LINE: overall} if overall is not None else {}


def _x_of(axis: str, value: Any, parameters: dict[str, float]) -> float:
    if axis == "train_clusters":
        return float(len(value))
    if axis == "model":
        return parameters.get(value, math.nan)
    return float(value)


def build_curves(sweep: SweepRecords, metric: str) -> dict:
    """One curve per line (mean and each cluster) along the first varying axis; other varying axes
    split the mean into one curve per value."""
    cells = sweep.cells
    axes = varying_axes(cells)
    axis = axes[0] if axes else None
    encoding = test_encodings(cells)[0]
    parameters: dict[str, list[float]] = defaultdict(list)
    for cell in cells:
        if cell.status == "done" and "num_parameters" in cell.metrics:
            parameters[str(cell.axis_values.get("model", cell.settings["model"]))].append(cell.metrics["num_parameters"])
    mean_parameters = {k: sum(v) / len(v) for k, v in parameters.items()}

    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[float, str] = {}
    status_by_x: dict[float, dict[str, list[str]]] = defaultdict(lambda: {"failed": [], "missing": []})
    for cell in cells:
        if axis is None:
            x = 0.0
        else:
            x = _x_of(axis, cell.axis_values[axis], mean_parameters)
            labels[x] = _label(axis, cell.axis_values[axis], mean_parameters)
        group = " ".join(f"{k}={cell.axis_values[k]}" for k in axes[1:])
        if cell.status != "done":
            status_by_x[x][cell.status].append(cell.name)
            continue
        for line, value in line_values(cell.metrics, encoding, metric).items():
            if group and line != MEAN_LINE:
                continue
            values[f"{line} {group}".strip() if group else line][x].append(value)

    curves = {}
    xs_all = sorted(set(labels) | {x for line in values.values() for x in line}) if axis else [0.0]
    for line, by_x in values.items():
        points = [point_stats(x, by_x.get(x, [])) for x in xs_all]
        summary = curve_summary(points) if axis in COUNT_AXES else {"spearman": None}
        curves[line] = {"points": [p.__dict__ | {"values": list(p.values), "label": labels.get(p.x, str(p.x)),
                                                  **{k: v for k, v in status_by_x[p.x].items()}}
                                   for p in points], **summary}
    return {"axis": axis, "x_label": X_LABELS.get(axis or "", axis or ""), "encoding": encoding,
            "log_x": axis in ("num_train_tasks", "instances_per_task", "model"), "curves": curves}


def _label(axis: str, value: Any, mean_parameters: dict[str, float]) -> str:
    if axis == "train_clusters":
        return f"{len(value)} (+{value[-1]})"
    if axis == "model" and str(value) in mean_parameters:
        return f"{value} ({mean_parameters[str(value)] / 1e6:.2g}M)"
    return str(value)


def build_matrix(sweep: SweepRecords, metric: str) -> dict | None:
    """Training encoding x testing encoding: mean (and CI) over seeds of the mean line."""
    cells = sweep.cells
    if "train_encoding" not in varying_axes(cells):
        return None
    rows = list(dict.fromkeys(c.axis_values["train_encoding"] for c in cells))
    columns = test_encodings(cells)
    grid: dict[str, dict[str, list[float]]] = {r: {c: [] for c in columns} for r in rows}
    for cell in cells:
        if cell.status != "done":
            continue
        for column in columns:
            line = line_values(cell.metrics, column, metric)
            if MEAN_LINE in line:
                grid[cell.axis_values["train_encoding"]][column].append(line[MEAN_LINE])
    cells_out = {r: {c: point_stats(0, v).__dict__ | {"values": list(v)} for c, v in row.items()}
                 for r, row in grid.items()}
    return {"rows": rows, "columns": columns, "cells": cells_out}


def baseline_scores(sweep: SweepRecords, metric: str, cache_dir: Path) -> dict[str, dict[str, float]]:
    """copy_demo / copy_input on the sweep's test tasks (those of its first cell), as the mean line."""
    from ablate.baselines import BASELINES
    from ablate.data.clusters import category_to_cluster
    from ablate.data.select import select_tasks, test_instances
    from ablate.data.sources import resolve_task_dir
    from ablate.data.tasks import TaskLibrary
    from ablate.metrics import evaluate_predictions

    settings = sweep.cells[0].settings
    data = settings["data"]
    library = TaskLibrary(resolve_task_dir(data["source"], data["synthetic_seed"], cache_dir))
    selection = select_tasks(library, split=data["split"], held_out_clusters=data["held_out_clusters"],
                             train_clusters=data["train_clusters"], num_train_tasks=data["num_train_tasks"],
                             cluster_map=data["clusters"], seed=settings["seed"])
    cluster_of = category_to_cluster(data["clusters"])
    rows = [(library.get(n), i) for n in selection.test_tasks
            for i in test_instances(library.get(n), settings["eval"]["instances_per_task"])]
    scores = {}
    for name, rule in BASELINES.items():
        result = evaluate_predictions([rule(t, i) for t, i in rows], [i.references for _, i in rows],
                                      [t.name for t, _ in rows], [t.category for t, _ in rows],
                                      [cluster_of.get(t.category) for t, _ in rows])
        flat = {metric_key("baseline", metric): result[metric]}
        flat.update({metric_key("baseline", "cluster", c, m): v
                     for c, values in result.get("per_cluster", {}).items() for m, v in values.items()})
        scores[name] = line_values(flat, "baseline", metric)
    return scores


def build_report(sweep: SweepRecords, metric: str, baselines: dict[str, dict[str, float]]) -> dict:
    """All numbers behind the figures (pure: records and baselines in, a JSON-able dict out)."""
    counts = defaultdict(int)
    for cell in sweep.cells:
        counts[cell.status] += 1
    report = {
        "experiment": sweep.experiment, "experiment_id": sweep.experiment_id, "metric": metric,
        "parent_run_id": sweep.parent_run_id,
        "cells": {"total": len(sweep.cells), "done": counts["done"], "failed": counts["failed"],
                  "missing": counts["missing"],
                  "not_done": [{"name": c.name, "id": c.cell_id, "status": c.status, "error": c.error}
                               for c in sweep.cells if c.status != "done"]},
        "baselines": baselines,
    }
    matrix = build_matrix(sweep, metric)
    if matrix is not None:
        report["matrix"] = matrix
    else:
        report.update(build_curves(sweep, metric))
    return report
