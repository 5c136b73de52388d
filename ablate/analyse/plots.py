"""Figures from a report: matplotlib PNG (publication style) and plotly HTML.

Curves: log-scale x for counts, 95% CI bands over seeds, the knee marked, heuristic baselines
as dashed lines, missing / failed cells marked with an x, brackets over significant adjacent
differences. Encodings: an annotated heatmap with significance marks and a winner row. Bars:
FLAN Fig. 3 (per held-out cluster) or InstructGPT's grouped bars (per metric).
"""

from __future__ import annotations

import math

from ablate.analyse.report import MEAN_LINE
from ablate.analyse.report_model import Report

BASELINE_STYLES = {"copy_demo": "--", "copy_input": ":"}


def curve_figure(report: Report):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    curves = report.curves
    lines = curves.lines
    ordered = [MEAN_LINE] + sorted(k for k in lines if k != MEAN_LINE) if MEAN_LINE in lines else sorted(lines)
    for line in ordered:
        curve = lines[line]
        points = curve.present
        if not points:
            continue
        xs = [p.x for p in points]
        means = [p.mean for p in points]
        is_mean = line == MEAN_LINE
        (handle,) = ax.plot(xs, means, marker="o", lw=2.4 if is_mean else 1.2, alpha=1 if is_mean else 0.75,
                            color="black" if is_mean else None, label=line, zorder=3 if is_mean else 2)
        # A band only where there is an interval: one seed gives none (not a zero-width band).
        ax.fill_between(xs, [p.ci_low if p.has_interval else math.nan for p in points],
                        [p.ci_high if p.has_interval else math.nan for p in points],
                        color=handle.get_color(), alpha=0.15 if is_mean else 0.08, lw=0)
        if curve.knee_in_range is not None:
            ax.axvline(curve.knee, color=handle.get_color(), ls="-.", lw=1)
            ax.annotate(f"knee {curve.knee:.3g} (support {curve.knee_support:.2f})", (curve.knee, min(means)),
                        rotation=90, fontsize=7, va="bottom", ha="right", color=handle.get_color())
        for p in curve.points:
            if p.n == 0 or p.failed or p.missing:
                ax.plot([p.x], [means[0] if not p.n else p.mean], marker="x", color="red", ms=9, zorder=4)
    _brackets(ax, report)
    _rounds(ax, report)
    for name, mean in report.baseline_means().items():
        ax.axhline(mean, ls=BASELINE_STYLES.get(name, "--"), color="gray", lw=1.2, label=f"{name} baseline")
    start = lines[MEAN_LINE].untuned if MEAN_LINE in lines else None
    if start is not None and start.n:  # drawn apart from the curve: x = 0 has no place on a log axis
        ax.axhline(start.mean, ls=(0, (1, 1)), color="tab:purple", lw=1.4,
                   label=f"untuned model ({start.mean:.1f}, n={start.n})")
        if start.has_interval:
            ax.axhspan(start.ci_low, start.ci_high, color="tab:purple", alpha=0.08, lw=0)
    if curves.log_x:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    _metric_ylim(ax, report.metric)
    labels = curves.labels()
    if labels:  # a tick at every measured point, named by its label (e.g. "27", "t5-mini (7.4M)")
        ticks = sorted(labels)
        ax.set_xticks(ticks, [labels[x].replace(" (", "\n(") for x in ticks], fontsize=7)
    ax.set_xlabel(curves.x_label)
    ax.set_ylabel(f"held-out {_metric_label(report.metric)} (test encoding {curves.encoding})")
    ax.set_title(f"{report.experiment}: mean and 95% CI over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return fig


def _rounds(ax, report: Report) -> None:
    """A refined sweep: each point of the mean line marked by the rounds that added its cells
    ("r0", "r0,2"), so the figure shows where the refinement spent its cells."""
    mean = report.curves.lines.get(MEAN_LINE)
    for point in mean.present if mean is not None else []:
        rounds = report.rounds_of(point)
        if rounds:
            ax.annotate("r" + ",".join(str(r) for r in rounds), (point.x, point.mean), textcoords="offset points",
                        xytext=(4, -10), fontsize=6, color="tab:blue")


def _brackets(ax, report: Report) -> None:
    """A bracket with a star over each pair of adjacent points of the mean line whose paired
    difference is significant after correction (the report's comparisons, ungrouped sweeps)."""
    from ablate.analyse.compare_sweep import adjacent_significant

    mean = report.curves.lines.get(MEAN_LINE)
    points = {p.x: p for p in mean.present} if mean is not None else {}
    for low, high in adjacent_significant(report):
        if low in points and high in points:
            top = max(points[low].mean, points[high].mean) + 3
            ax.plot([low, low, high, high], [top - 1, top, top, top - 1], color="black", lw=0.8)
            ax.text(math.sqrt(low * high) if report.curves.log_x and low > 0 else (low + high) / 2, top, "*",
                    ha="center", va="bottom", fontsize=9)


def matrix_figure(report: Report):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ablate.analyse.compare_sweep import column_winners, significant_marks

    matrix = report.matrix
    rows, columns = matrix.rows, matrix.columns
    values = np.array([[matrix.cell(r, c).mean if matrix.cell(r, c).n else np.nan for c in columns] for r in rows],
                      dtype=float)
    marks = significant_marks(report)
    winners = column_winners(report)
    fig, ax = plt.subplots(figsize=(max(1.1 * len(columns) + 2.5, 5.5), 0.6 * len(rows) + 2.4), dpi=150)
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            cell = matrix.cell(row, column)
            text = ("missing" if not cell.n else f"{cell.mean:.1f}\n(n=1)" if cell.n == 1
                    else f"{cell.mean:.1f}\n±{cell.error_above:.1f}")
            text += "*" * marks.get((row, column), 0)  # one star per row of its column it significantly beats
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if not cell.n or cell.mean < np.nanmean(values) else "black")
    # The winner row, under each column's name: its best row, and whether it beats every other one.
    ticks = [f"{c}\nbest: {winners[c].row}\n{winners[c].verdict}" if c in winners else c for c in columns]
    ax.set_xticks(range(len(columns)), ticks, rotation=0 if winners else 35, ha="center" if winners else "right",
                  fontsize=7 if winners else 8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(matrix.column_label)
    ax.set_ylabel(matrix.row_label)
    title = f"{report.experiment}: held-out {_metric_label(report.metric)}, mean over seeds"
    if report.comparisons is not None:
        title += "\n* per row of its column it beats (paired, corrected p < 0.05)"
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def curve_html(report: Report, include_plotlyjs: bool | str = True) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for line, curve in report.curves.lines.items():
        points = curve.present
        fig.add_trace(go.Scatter(
            x=[p.x for p in points], y=[p.mean for p in points], mode="lines+markers", name=line,
            line={"width": 3 if line == MEAN_LINE else 1.5},
            error_y={"type": "data", "symmetric": False, "array": [p.error_above for p in points],
                     "arrayminus": [p.error_below for p in points]},
            text=[f"{p.label}: n={p.n}" for p in points], hovertemplate="%{text}<br>%{y:.2f}"))
    for name, mean in report.baseline_means().items():
        fig.add_hline(y=mean, line_dash="dash", annotation_text=f"{name} baseline")
    mean = report.curves.lines.get(MEAN_LINE)
    start = mean.untuned if mean is not None else None
    if start is not None and start.n:
        fig.add_hline(y=start.mean, line_dash="dot", line_color="purple", annotation_text=f"untuned model (n={start.n})")
    fig.update_layout(title=f"{report.experiment} ({report.metric})", xaxis_title=report.curves.x_label,
                      yaxis_title=f"held-out {_metric_label(report.metric)}", template="simple_white")
    if report.curves.log_x:
        fig.update_xaxes(type="log")
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs)


def _bars_y_label(report: Report) -> str:
    bars = report.bars
    return f"held-out {_metric_label(bars.metric)}" if bars.metric else "held-out score (%; each group its metric)"


def bars_figure(report: Report):
    """Grouped bars, 95% CIs: FLAN Fig. 3 (a group per held-out cluster and the mean, a bar per
    untuned / tuned setting) or InstructGPT's (a group per metric, a bar per setting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = report.bars
    groups, series = bars.groups, bars.series
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2.5, 4.2), dpi=150)
    width = 0.8 / len(series)
    for i, (name, points) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [points[g].mean or 0.0 for g in groups], width, capsize=3, label=name,
               yerr=[[points[g].error_below for g in groups], [points[g].error_above for g in groups]])
    if bars.metric is not None:  # baselines share the bars' one metric
        for name, mean in report.baseline_means().items():
            ax.axhline(mean, ls=BASELINE_STYLES.get(name, "--"), color="gray", lw=1, label=f"{name} baseline (mean)")
    # A group per metric: say which of them are better low (hallucination_rate, perplexity).
    names = [g + "\n(lower is better)" if bars.metric is None and not _higher_is_better(g) else g for g in groups]
    ax.set_xticks(range(len(groups)), names, fontsize=8)
    ax.set_xlabel(bars.group_label)
    ax.set_ylabel(_bars_y_label(report))
    ax.set_title(f"{report.experiment}: mean and 95% CI over seeds", fontsize=10)
    _metric_ylim(ax, bars.metric or groups[0])
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def bars_html(report: Report, include_plotlyjs: bool | str = True) -> str:
    import plotly.graph_objects as go

    bars = report.bars
    fig = go.Figure([go.Bar(name=name, x=bars.groups, y=[points[g].mean for g in bars.groups],
                            error_y={"type": "data", "symmetric": False,
                                     "array": [points[g].error_above for g in bars.groups],
                                     "arrayminus": [points[g].error_below for g in bars.groups]})
                     for name, points in bars.series.items()])
    fig.update_layout(barmode="group", title=f"{report.experiment} ({bars.metric or 'per metric'})",
                      xaxis_title=bars.group_label, yaxis_title=_bars_y_label(report), template="simple_white")
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs)


def matrix_html(report: Report, include_plotlyjs: bool | str = True) -> str:
    import plotly.graph_objects as go

    matrix = report.matrix
    z = [[matrix.cell(r, c).mean for c in matrix.columns] for r in matrix.rows]
    fig = go.Figure(go.Heatmap(z=z, x=matrix.columns, y=matrix.rows, colorscale="Viridis",
                               text=[[f"{v:.1f}" if v is not None else "missing" for v in row] for row in z],
                               texttemplate="%{text}"))
    fig.update_layout(title=f"{report.experiment} ({report.metric})", xaxis_title=matrix.column_label,
                      yaxis_title=matrix.row_label, template="simple_white")
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs)


def report_figures(report: Report, include_plotlyjs: bool | str = True):
    """(matplotlib figure, plotly HTML fragment) for a report."""
    if report.bars is not None:
        return bars_figure(report), bars_html(report, include_plotlyjs)
    if report.matrix is not None:
        return matrix_figure(report), matrix_html(report, include_plotlyjs)
    return curve_figure(report), curve_html(report, include_plotlyjs)


def _higher_is_better(metric: str) -> bool:
    from ablate.results import metric_spec

    return metric_spec(metric).higher_is_better


def _metric_label(metric: str) -> str:
    """The axis label of a metric: a share is in %, others in their own unit."""
    from ablate.results import metric_range

    return f"{metric} (%)" if metric_range(metric) == (0.0, 100.0) else metric


def _metric_ylim(ax, metric: str) -> None:
    """The y axis within the metric's range: a bounded end is the axis's end (a share: 0 to at most
    100); an open end is left to the data."""
    import math

    from ablate.results import metric_range

    low, high = metric_range(metric)
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom=low if math.isfinite(low) else bottom, top=min(high, top) if math.isfinite(high) else top)
