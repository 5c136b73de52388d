"""Side effects of a report: files under --out and artifacts of the sweep's parent MLflow run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from ablate import results
from ablate.analyse.compare_sweep import column_winners, comparison_lines
from ablate.analyse.plots import report_figures
from ablate.analyse.report import MEAN_LINE
from ablate.analyse.report_model import Point, Report
from ablate.track.retry import DEFAULT_RETRY_SECONDS, RetryPolicy


class Written(list):
    """The report's files written locally; `not_logged` says why the parent run did not get them
    (the tracking server refused the write), None when it did."""

    not_logged: str | None = None


def publish_report(report: Report, tracking_uri: str, out_dir: Path | None,
                   retry_seconds: float = DEFAULT_RETRY_SECONDS, *, out: TextIO | None = None) -> Written:
    """Write report.json, <name>.png and <name>.html to `out_dir`, then log them to the parent run.
    A server that refuses the write (a user with READ permission on the experiment reporting on
    it) loses nothing: the files are written first, and one line on `out` says so."""
    import matplotlib.pyplot as plt

    from ablate.track.retry import AccessRefused

    figure, html = report_figures(report)
    name = report.experiment
    numbers = report.to_json()
    written = Written()
    try:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            figure.savefig(out_dir / f"{name}.png")
            (out_dir / f"{name}.html").write_text(_page(name, html))
            (out_dir / "report.json").write_text(json.dumps(numbers, indent=2))
            written += [out_dir / f"{name}.png", out_dir / f"{name}.html", out_dir / "report.json"]
        try:
            _log_report(report, tracking_uri, retry_seconds, figure, html, numbers)
        except AccessRefused as exc:
            where = f"it is in {out_dir} only" if out_dir is not None else "it is printed only"
            written.not_logged = (f"The report was not logged to the parent run {report.parent_run_id}: the tracking "
                                  f"server refused the write (HTTP {exc.status}"
                                  + (", no permission to write to the experiment" if exc.status == 403 else "")
                                  + f"); {where}.")
            print(written.not_logged, file=out or sys.stdout, flush=True)
    finally:
        plt.close(figure)
    return written


def _log_report(report: Report, tracking_uri: str, retry_seconds: float, figure, html: str, numbers: dict) -> None:
    """The report into the sweep's parent run: its curve as metrics, its markdown as the run's
    description, the figures and numbers as report/ artifacts."""
    from ablate.track.client import mlflow_client
    from ablate.track.store import Store

    name = report.experiment
    client, retry = mlflow_client(tracking_uri), RetryPolicy(retry_seconds)
    run_id = report.parent_run_id
    store = Store(tracking_uri, retry)
    # The curve as the parent run's own metrics, and the report as its description: MLflow's chart
    # of the parent run is the saturation curve, and the numbers are one click away.
    store.log_points(run_id, curve_points(report))
    store.log_metrics(run_id, comparison_metrics(report))
    store.set_tag(run_id, results.NOTE, report_markdown(report))
    retry.call(lambda: client.log_figure(run_id, figure, results.report_artifact(f"{name}.png")))
    retry.call(lambda: client.log_text(run_id, _page(name, html), results.report_artifact(f"{name}.html")))
    retry.call(lambda: client.log_dict(run_id, numbers, results.report_artifact("report.json")))
    retry.call(lambda: client.log_table(run_id, data=_table(report), artifact_file=results.report_artifact("points.json")))


def curve_points(report: Report) -> dict[str, list[tuple[int, float]]]:
    """Each curve's means and CI bounds as metric series, stepped by the axis value (count axes)
    or by the point's position (other axes; the description names the positions)."""
    if report.curves is None:
        return {}
    points: dict[str, list[tuple[int, float]]] = {}
    for line, curve in report.curves.lines.items():
        for position, point in enumerate(curve.points):
            if not point.n:
                continue
            step = round(point.x) if report.curves.x_is_count else position
            for statistic in ("mean", "ci_low", "ci_high"):
                value = getattr(point, statistic)
                if value is None:  # one seed: no interval, so no bound (report.json has null)
                    continue
                # Within the metric's range already (ablate.analyse.stats.mean_ci clips the interval).
                points.setdefault(results.curve_key(line, report.metric, statistic), []).append((step, value))
    return points


def comparison_metrics(report: Report) -> dict[str, float]:
    """Each paired comparison's difference, interval, corrected p and P(A beats B) as parent-run
    metrics (keys longer than MLflow allows are left to report.json)."""
    found = {}
    for entry in report.comparisons.comparisons if report.comparisons is not None else []:
        for statistic in ("diff", "ci_low", "ci_high", "p_adjusted", "prob_a_beats_b"):
            key = results.comparison_key(entry.parts, report.metric, statistic)
            if len(key) <= results.MAX_KEY_LENGTH:
                found[key] = float(getattr(entry, statistic))
    return found


def report_markdown(report: Report) -> str:
    """The report as markdown, for the parent run's description in the MLflow UI."""
    cells = report.cells
    name, metric = report.experiment, report.metric
    lines = [f"### {name}: held-out {metric}, mean over seeds [95% t-interval, within the metric's range]", "",
             f"{cells.done}/{cells.total} cells done, {cells.failed} failed, {cells.missing} missing.", ""]
    if report.bars is not None:
        bars = report.bars
        lines += [f"| setting \\ {bars.group_label} | " + " | ".join(bars.groups) + " |",
                  "|---" * (len(bars.groups) + 1) + "|"]
        lines += [f"| {setting} | " + " | ".join(points[g].text() for g in bars.groups) + " |"
                  for setting, points in bars.series.items()]
    elif report.matrix is not None:
        matrix = report.matrix
        lines += [f"| {matrix.row_label} \\ {matrix.column_label} | " + " | ".join(matrix.columns) + " |",
                  "|---" * (len(matrix.columns) + 1) + "|"]
        lines += [f"| {row} | " + " | ".join(matrix.cell(row, c).text() for c in matrix.columns) + " |"
                  for row in matrix.rows]
        winners = column_winners(report)
        if winners:
            lines.append("| **best** | " + " | ".join(f"{winners[c].row} ({winners[c].verdict})" if c in winners else "-"
                                                   for c in matrix.columns) + " |")
    else:
        curves = report.curves
        steps = "the axis value" if curves.x_is_count else "the point's position (0, 1, ...)"
        lines += [f"x: {curves.x_label}. Curve metrics `curve/<line>/{metric}` are stepped by {steps}.", ""]
        labels = [p.label for p in next(iter(curves.lines.values())).points] if curves.lines else []
        lines += ["| line | " + " | ".join(labels) + " | outcome | knee [95% interval], support | trend |",
                  "|---" * (len(labels) + 4) + "|"]
        for line, curve in curves.lines.items():
            spearman = curve.spearman.text() if curve.spearman is not None else "-"
            lines.append(f"| {line} | " + " | ".join(p.text() for p in curve.points)
                         + f" | {curve.outcome or '-'} | {curve.knee_text() or '-'} | {spearman} |")
        start = curves.lines[MEAN_LINE].untuned if MEAN_LINE in curves.lines else None
        if start is not None:
            lines += ["", f"Untuned model (not in the fits): {start.text()}."]
    if report.comparisons is not None and report.comparisons.comparisons:
        lines += ["", *(line.strip() for line in comparison_lines(report.comparisons))]
    if report.baseline_means():
        lines += ["", "Baselines (mean line): " + ", ".join(f"{b} {mean:.1f}" for b, mean in report.baseline_means().items())
                  + "."]
    if cells.not_done:
        lines += ["", "Not done:"] + [f"- {c.status.upper()} {c.name}" + (f": {c.error}" if c.error else "")
                                      for c in cells.not_done]
    lines += ["", f"Figures: artifacts `{results.report_artifact(name + '.png')}`, "
                  f"`{results.report_artifact(name + '.html')}`; numbers: `{results.report_artifact('report.json')}`."]
    return "\n".join(lines)


def _page(title: str, fragment: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{fragment}</body></html>"


def _grid(report: Report) -> list[tuple[str, str, float, Point]]:
    """Every point of the report's figure as (line, label, x, point): a curve's points, a matrix's
    row x column, or a setting x group of bars."""
    if report.bars is not None:
        return [(setting, group, 0.0, point) for setting, points in report.bars.series.items()
                for group, point in points.items()]
    if report.matrix is not None:
        return [(row, column, 0.0, point) for row, cells in report.matrix.cells.items()
                for column, point in cells.items()]
    return [(line, point.label, point.x, point) for line, curve in report.curves.lines.items() for point in curve.points]


def _table(report: Report) -> dict[str, list]:
    """Points as columns (line, x, label, n, mean, ci_low, ci_high) for mlflow's table view."""
    columns: dict[str, list] = {k: [] for k in ("line", "x", "label", "n", "mean", "ci_low", "ci_high")}
    for line, label, x, point in _grid(report):
        for key, value in (("line", line), ("x", x), ("label", label), ("n", point.n), ("mean", point.mean),
                           ("ci_low", point.ci_low), ("ci_high", point.ci_high)):
            columns[key].append(value)
    return columns


def print_report(report: Report) -> None:
    """A plain-text digest: points, fits, knees, trends, comparisons and baselines."""
    cells = report.cells
    print(f"Report '{report.experiment}' ({report.metric}): {cells.done}/{cells.total} cells done, "
          f"{cells.failed} failed, {cells.missing} missing")
    for cell in cells.not_done:
        print(f"  {cell.status.upper():<8} {cell.name}" + (f": {cell.error}" if cell.error else ""))
    for name, scores in report.baselines.items():
        print(f"  baseline {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    if report.comparisons is not None and report.comparisons.comparisons:
        print("\n".join(comparison_lines(report.comparisons)))
    if report.comparisons_error:
        print(f"  no paired comparisons: {report.comparisons_error}")
    if report.bars is not None:
        for setting, points in report.bars.series.items():
            print(f"  {setting}: " + ", ".join(f"{g} {p.text()}" for g, p in points.items()))
        return
    if report.matrix is not None:
        matrix = report.matrix
        print(f"  {matrix.row_label} \\ {matrix.column_label}: " + " ".join(f"{c:>14}" for c in matrix.columns))
        for row in matrix.rows:
            print(f"  {row:<16} " + " ".join(f"{matrix.cell(row, c).text(compact=True):>16}" for c in matrix.columns))
        winners = column_winners(report)
        if winners:
            print(f"  {'best':<16} " + " ".join(f"{winners[c].row + ' ' + winners[c].verdict if c in winners else '-':>16}"
                                                for c in matrix.columns))
        return
    for line, curve in report.curves.lines.items():
        points = " ".join(f"{p.label}:{p.text(compact=True)}" if report.curves.axis else p.text() for p in curve.points)
        if curve.untuned is not None:
            points = f"untuned:{curve.untuned.text(compact=True)} " + points
        extra = [x for x in (curve.outcome, f"knee {curve.knee_text()}" if curve.knee_text() else None,
                             curve.spearman.text() if curve.spearman is not None else None) if x]
        print(f"  {line:<16} {points}" + (f"  | {', '.join(extra)}" if extra else ""))
