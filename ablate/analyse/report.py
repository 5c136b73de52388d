"""`ablate report`: a sweep's MLflow runs -> points (mean, 95% CI over seeds), fits, knees, baselines.

`build_report` is pure (typed records in, numbers out); `make_report` reads the records from
MLflow first. Writing figures and logging them to the parent run happen in `publish.py`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from ablate import results
from ablate.analyse.collect import CellRecord, SweepRecords, collect_sweep
from ablate.analyse.report_model import (Bars, CellCounts, Curve, Curves, Matrix, NotDone, Point, Report,
                                         RoundOf)
from ablate.analyse.stats import curve_summary, point_stats
from ablate.baselines import BaselineScores
from ablate.errors import AblateError
from ablate.status import CellStatus
from ablate.track.retry import DEFAULT_RETRY_SECONDS

MEAN_LINE = "mean"
X_LABELS = {
    "train_clusters": "number of training clusters",
    "num_train_tasks": "number of training tasks",
    "instances_per_task": "training instances per task",
    "model": "model parameters",
}
COUNT_AXES = {"train_clusters", "num_train_tasks", "instances_per_task", "model"}
LOG_AXES = {"num_train_tasks", "instances_per_task", "model"}  # drawn and fitted on log x


def varying_axes(cells: list[CellRecord]) -> list[str]:
    """Axes (other than the seed) that take more than one value in the plan, in plan order."""
    names: list[str] = []
    for record in cells:
        for key in record.cell.axis_values:
            if key != "seed" and key not in names:
                names.append(key)
    return [k for k in names if len({repr(r.cell.axis_values.get(k)) for r in cells}) > 1]


AGGREGATES = ("clusters", "overall")  # the mean line: the mean of the clusters, or the per-instance score


def _lines(clusters: dict[str, float], overall: float | None, aggregate: str) -> dict[str, float]:
    """The mean line and one line per cluster. The mean line is, by `aggregate`, the unweighted
    mean of the clusters' scores ("(no cluster)" included; FLAN's per-cluster view) or the
    official per-instance score over every test task (SuperNI's headline number); without
    clusters, the overall score."""
    if aggregate == "overall" or not clusters:
        return {MEAN_LINE: overall, **clusters} if overall is not None else dict(clusters)
    return {MEAN_LINE: sum(clusters.values()) / len(clusters), **clusters}


def line_values(metrics: dict[str, float], encoding: str, metric: str, aggregate: str = "clusters") -> dict[str, float]:
    """The lines' values in one run's metrics."""
    return _lines(results.cluster_scores(metrics, encoding, metric), results.overall_score(metrics, encoding, metric),
                  aggregate)


def baseline_lines(baselines: dict[str, BaselineScores], metric: str, aggregate: str = "clusters") -> dict:
    return {name: _lines({c: v[metric] for c, v in scores.per_cluster.items() if metric in v},
                         scores.overall.get(metric), aggregate)
            for name, scores in baselines.items() if metric in scores.overall}  # not every evaluator scores baselines


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _x_of(axis: str, value: Any, parameters: dict[str, float], positions: dict[str, int]) -> float:
    """Where a point sits on the x axis: the number of clusters, the model's parameter count, the
    value of a numeric axis, or else (a block such as train.lora, a name, null) its position
    among the axis's values in plan order (`positions`, by repr)."""
    if axis == "train_clusters":
        return float(len(value))
    if axis == "model":
        return parameters.get(value, math.nan)
    if repr(value) in positions:
        return float(positions[repr(value)])
    return float(value)


def axis_positions(axis: str, cells: list[CellRecord]) -> dict[str, int]:
    """Positions of an axis's values in plan order, when they are not all numbers (else empty:
    numbers are their own x)."""
    if axis in ("train_clusters", "model"):
        return {}
    values = list({repr(r.cell.axis_values[axis]): r.cell.axis_values[axis] for r in cells
                   if axis in r.cell.axis_values}.items())
    if all(_is_number(value) for _, value in values):
        return {}
    return {key: position for position, (key, _) in enumerate(values)}


def build_curves(sweep: SweepRecords, metric: str, aggregate: str = "clusters") -> Curves:
    """One curve per line (mean and each cluster) along the first varying axis; other varying axes
    split the mean into one curve per value."""
    cells = sweep.cells
    axes = varying_axes(cells)
    axis = axes[0] if axes else None
    encoding = cells[0].cell.settings.test_encodings[0]
    bounds = results.metric_range(metric)  # intervals and fits stay within the metric's range
    parameters: dict[str, list[float]] = defaultdict(list)
    for record in cells:
        if record.status == CellStatus.DONE and results.NUM_PARAMETERS in record.metrics:
            parameters[record.cell.settings.model].append(record.metrics[results.NUM_PARAMETERS])
    mean_parameters = {k: sum(v) / len(v) for k, v in parameters.items()}
    positions = axis_positions(axis, cells) if axis is not None else {}
    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    ids: dict[str, dict[float, list[str]]] = defaultdict(lambda: defaultdict(list))  # the cells behind each value
    untuned: dict[str, list[float]] = defaultdict(list)
    labels: dict[float, str] = {}
    status_by_x: dict[float, dict[str, list[str]]] = defaultdict(lambda: {"failed": [], "missing": []})
    for record in cells:
        axis_values = record.cell.axis_values
        if axis is not None and record.cell.settings.untuned:
            # The untuned starting point: part of the numbers, drawn apart, not in the fits' x range.
            group = " ".join(f"{k}={axis_values[k]}" for k in axes[1:])
            for line, value in (line_values(record.metrics, encoding, metric, aggregate) if record.status == CellStatus.DONE else {}).items():
                if not group or line == MEAN_LINE:
                    untuned[f"{line} {group}".strip() if group else line].append(value)
            continue
        if axis is None:  # no axis: the sweep is one point
            x = 0.0
            labels[x] = "one point"
        else:
            x = _x_of(axis, axis_values[axis], mean_parameters, positions)
            label = _label(axis, axis_values[axis], mean_parameters)
            # Clusters added in a random order per seed: the point is named by its count only.
            labels[x] = label if labels.get(x, label) == label else f"{x:g}"
        group = " ".join(f"{k}={axis_values[k]}" for k in axes[1:])
        if record.status != CellStatus.DONE:
            status_by_x[x][_status_word(record.status)].append(record.cell.name)
            continue
        for line, value in line_values(record.metrics, encoding, metric, aggregate).items():
            if group and line != MEAN_LINE:
                continue
            name = f"{line} {group}".strip() if group else line
            values[name][x].append(value)
            ids[name][x].append(record.cell.id)

    curves = {}
    xs_all = sorted(set(labels) | {x for line in values.values() for x in line}) if axis else [0.0]
    for line, by_x in values.items():
        points = [point_stats(x, by_x.get(x, []), bounds) for x in xs_all]
        summary = curve_summary(points, log_scale=axis in LOG_AXES, bounds=bounds) if axis in COUNT_AXES else {}
        start = Point.of(point_stats(0.0, untuned[line], bounds), "untuned") if line in untuned else None
        curves[line] = Curve(points=[Point.of(p, labels.get(p.x, str(p.x)), cells=ids[line][p.x], **status_by_x[p.x])
                                     for p in points],
                             untuned=start, **summary)
    return Curves(axis=axis, x_label=X_LABELS.get(axis or "", axis or ""), encoding=encoding,
                  x_is_count=axis in COUNT_AXES, log_x=axis in LOG_AXES, lines=curves)


def _label(axis: str, value: Any, mean_parameters: dict[str, float]) -> str:
    if axis == "train_clusters":
        return f"{len(value)} (+{value[-1]})" if value else "0 (untuned)"
    if axis == "model" and str(value) in mean_parameters:
        return f"{value} ({mean_parameters[str(value)] / 1e6:.2g}M)"
    return _value_label(value)


def _value_label(value: Any) -> str:
    from ablate.plan import format_value

    return format_value(value)


def build_matrix(sweep: SweepRecords, metric: str, aggregate: str = "clusters") -> Matrix | None:
    """A grid of the mean line (mean and CI over seeds) for comparisons without an x axis:
    training x testing encoding when the training encoding varies, else the first varying axis
    x a second one that is not a count (e.g. model x train.lora). None when a curve fits better."""
    cells = sweep.cells
    axes = varying_axes(cells)
    test_encodings = cells[0].cell.settings.test_encodings
    if "train_encoding" in axes or (not axes and len(test_encodings) > 1):  # test encodings alone: one row
        row_axis, column_axis = "train_encoding", None
        columns = test_encodings
    else:
        categorical = [a for a in axes if a not in COUNT_AXES]
        if len(axes) != 2 or not categorical:
            return None
        row_axis, column_axis = axes[0], axes[1]
        columns = list(dict.fromkeys(_value_label(r.cell.axis_values[column_axis]) for r in cells))
    def row_of(record: CellRecord) -> str:
        return _value_label(record.cell.axis_values.get(row_axis, record.cell.settings.train.encoding))

    rows = list(dict.fromkeys(row_of(r) for r in cells))
    grid: dict[str, dict[str, list[float]]] = {r: {c: [] for c in columns} for r in rows}
    for record in cells:
        if record.status != CellStatus.DONE:
            continue
        row = row_of(record)
        if column_axis is None:  # every test encoding of one training
            for column in columns:
                line = line_values(record.metrics, column, metric, aggregate)
                if MEAN_LINE in line:
                    grid[row][column].append(line[MEAN_LINE])
        else:
            line = line_values(record.metrics, test_encodings[0], metric, aggregate)
            if MEAN_LINE in line:
                grid[row][_value_label(record.cell.axis_values[column_axis])].append(line[MEAN_LINE])
    bounds = results.metric_range(metric)
    return Matrix(rows=rows, columns=columns,
                  cells={r: {c: Point.of(point_stats(0, v, bounds)) for c, v in row.items()} for r, row in grid.items()},
                  row_label="training encoding" if column_axis is None else row_axis,
                  column_label="testing encoding" if column_axis is None else column_axis)


LEAVE_ONE_OUT = "held_out_cluster"  # the leave-one-cluster-out axis (ablate.spec.LeaveOneClusterOut)


def build_bars(sweep: SweepRecords, metric: str, aggregate: str = "clusters") -> Bars | None:
    """FLAN Fig. 3: per held-out cluster (and their mean), the untuned model prompted zero-shot and
    few-shot beside the instruction-tuned model zero-shot. Drawn when the sweep varies whether cells
    are tuned (e.g. train.steps: [0, N]), and optionally which cluster is held out (leave one
    cluster out: each cell then counts for its own cluster), and tests a zero-shot and a few-shot
    encoding. With leave-one-cluster-out the mean bar is, per seed, the mean over the held-out
    clusters' models."""
    cells = sweep.cells
    axes = varying_axes(cells)
    encodings = cells[0].cell.settings.test_encodings
    zero = next((e for e in encodings if "pos" not in e), None)
    few = next((e for e in encodings if "pos" in e), None)
    tuned_states = {r.cell.settings.untuned for r in cells}
    loo = LEAVE_ONE_OUT in axes
    if len([a for a in axes if a != LEAVE_ONE_OUT]) != 1 or tuned_states != {True, False} or zero is None \
            or few is None:
        return None
    series = {f"untuned, zero-shot ({zero})": (True, zero), f"untuned, few-shot ({few})": (True, few),
              f"instruction-tuned, zero-shot ({zero})": (False, zero)}
    values: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in series}
    by_seed: dict[str, dict[int, list[float]]] = {name: defaultdict(list) for name in series}
    for record in cells:
        if record.status != CellStatus.DONE:
            continue
        for name, (untuned, encoding) in series.items():
            if record.cell.settings.untuned == untuned:
                lines = line_values(record.metrics, encoding, metric, aggregate)
                if loo:  # this cell's model answers for its own held-out cluster only
                    cluster = record.cell.axis_values[LEAVE_ONE_OUT]
                    if cluster in lines:
                        values[name][cluster].append(lines[cluster])
                        by_seed[name][record.cell.settings.seed].append(lines[cluster])
                    continue
                for line, value in lines.items():
                    values[name][line].append(value)
    if loo:
        clusters = len({r.cell.axis_values[LEAVE_ONE_OUT] for r in cells})
        for name, seeds in by_seed.items():
            values[name][MEAN_LINE] = [sum(v) / len(v) for v in seeds.values() if len(v) == clusters]
    groups = list(dict.fromkeys(r.cell.axis_values[LEAVE_ONE_OUT] for r in cells)) if loo else \
        sorted({g for by_line in values.values() for g in by_line if g != MEAN_LINE})
    groups = groups + [MEAN_LINE]
    bounds = results.metric_range(metric)
    return Bars(groups=groups, metric=metric,
                series={name: {g: Point.of(point_stats(0, by_line.get(g, []), bounds)) for g in groups}
                        for name, by_line in values.items()})


def bar_metrics(cells: list[CellRecord]) -> list[str]:
    """The metrics of InstructGPT-style grouped bars: each evaluator's headline, then its other
    shares (0-100), in the cells' evaluator order."""
    from ablate.evaluators import evaluator_of

    found: list[str] = []
    for config in cells[0].cell.settings.eval.evaluators:
        evaluator = evaluator_of(config.kind)
        headline = evaluator.headline_of(config) if evaluator.headline_of is not None else evaluator.headline
        shares = [m.name for m in evaluator.metrics if results.metric_range(m.name) == (0.0, 100.0)]
        found += [m for m in dict.fromkeys([headline, *shares]) if m not in found]
    return found


def build_metric_bars(sweep: SweepRecords, metric: str, aggregate: str = "clusters") -> Bars | None:
    """InstructGPT's figures: one group of bars per metric (each evaluator's headline and shares),
    one bar per setting of the sweep's one categorical axis (e.g. stages: sft, sft+dpo, sft+dpo
    with an SFT mix), 95% CIs over seeds. Drawn when the cells run more than one evaluator; the
    report's `metric` is the first group."""
    cells = sweep.cells
    axes = varying_axes(cells)
    if len(axes) != 1 or axes[0] in COUNT_AXES or axes[0] == "train_encoding" \
            or len(cells[0].cell.settings.eval.evaluators) < 2:
        return None
    axis, encoding = axes[0], cells[0].cell.settings.test_encodings[0]
    metrics = [metric] + [m for m in bar_metrics(cells) if m != metric]
    settings = list(dict.fromkeys(_value_label(r.cell.axis_values[axis]) for r in cells))
    values: dict[str, dict[str, list[float]]] = {s: defaultdict(list) for s in settings}
    for record in cells:
        if record.status != CellStatus.DONE:
            continue
        setting = _value_label(record.cell.axis_values[axis])
        for name in metrics:
            line = line_values(record.metrics, encoding, name, aggregate)
            if MEAN_LINE in line:
                values[setting][name].append(line[MEAN_LINE])
    metrics = [m for m in metrics if any(values[s][m] for s in settings)]  # scored by some cell
    if not metrics:  # no cell finished: the curve over the settings' positions lists them as not done
        return None
    return Bars(groups=metrics, group_label="metric", metric=None, series={
        s: {m: Point.of(point_stats(0, values[s][m], results.metric_range(m))) for m in metrics} for s in settings})


def make_report(tracking_uri: str, experiment: str, metric: str | None = None, aggregate: str = "clusters",
                retry_seconds: float = DEFAULT_RETRY_SECONDS, correction: str = "holm") -> Report:
    """Collect the sweep from MLflow and compute every number behind its figures (`metric`: the
    headline metric of the sweep's first evaluator unless given), with the paired comparisons of
    its settings from the cells' per-instance records (compare_sweep.py)."""
    from ablate.analyse.compare_sweep import report_comparisons
    from ablate.analyse.instances import cell_scores_reader

    sweep = collect_sweep(tracking_uri, experiment, retry_seconds)
    metric = metric or results.headline_metric([r.cell for r in sweep.cells])
    report = build_report(sweep, metric, aggregate)
    try:
        comparisons = report_comparisons(sweep, report, cell_scores_reader(tracking_uri, metric, retry_seconds),
                                         correction)
    except AblateError as exc:  # a damaged predictions artifact: the report stands, and says why it has no comparisons
        return report.model_copy(update={"comparisons_error": exc.render()})
    return report.model_copy(update={"comparisons": comparisons})


def _status_word(status: CellStatus) -> str:
    """How the report names a cell that is not done: failed, or missing (no finished or failed run)."""
    return "missing" if status == CellStatus.TO_RUN else CellStatus(status).value


def build_report(sweep: SweepRecords, metric: str, aggregate: str = "clusters") -> Report:
    """All numbers behind the figures (pure: typed records in, a typed report out)."""
    counts = defaultdict(int)
    for cell in sweep.cells:
        counts[cell.status] += 1
    rounds = None
    if sweep.plan is not None and sweep.plan.rounds:  # the round that first proposed each cell, and why
        reasons = {cid: why for r in sweep.plan.rounds for cid, why in r.reasons.items()}
        rounds = {cid: RoundOf(round=index, reason=reasons.get(cid)) for cid, index in sweep.plan.round_of().items()}
    bars = build_bars(sweep, metric, aggregate) or build_metric_bars(sweep, metric, aggregate)
    matrix = None if bars is not None else build_matrix(sweep, metric, aggregate)
    curves = None if bars is not None or matrix is not None else build_curves(sweep, metric, aggregate)
    return Report(
        experiment=sweep.experiment, experiment_id=sweep.experiment_id, metric=metric,
        sweep=sweep.sweep or sweep.experiment, parent_run_id=sweep.parent_run_id,
        cells=CellCounts(total=len(sweep.cells), done=counts[CellStatus.DONE], failed=counts[CellStatus.FAILED],
                         missing=counts[CellStatus.TO_RUN],
                         not_done=[NotDone(name=r.cell.name, id=r.cell.id, status=_status_word(r.status), error=r.error)
                                   for r in sweep.cells if r.status != CellStatus.DONE]),
        aggregate=aggregate, baselines=baseline_lines(sweep.baselines, metric, aggregate), rounds=rounds,
        curves=curves, matrix=matrix, bars=bars)
