"""Side effects of a report: files under --out and artifacts of the sweep's parent MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

from ablate import results
from ablate.analyse.compare_sweep import comparison_lines
from ablate.analyse.plots import report_figures
from ablate.analyse.stats import knee_text, spearman_text
from ablate.track.retry import DEFAULT_RETRY_SECONDS, RetryPolicy


def publish_report(report: dict, tracking_uri: str, out_dir: Path | None,
                   retry_seconds: float = DEFAULT_RETRY_SECONDS) -> list[Path]:
    """Write report.json, <name>.png and <name>.html to `out_dir` and log them to the parent run."""
    import matplotlib.pyplot as plt
    from ablate.track.client import mlflow_client
    from ablate.track.store import Store

    figure, html = report_figures(report)
    name = report["experiment"]
    client, retry = mlflow_client(tracking_uri), RetryPolicy(retry_seconds)
    run_id = report["parent_run_id"]
    store = Store(tracking_uri, retry)
    # The curve as the parent run's own metrics, and the report as its description: MLflow's chart
    # of the parent run is the saturation curve, and the numbers are one click away.
    store.log_points(run_id, curve_points(report))
    store.log_metrics(run_id, comparison_metrics(report))
    store.set_tag(run_id, results.NOTE, report_markdown(report))
    retry.call(lambda: client.log_figure(run_id, figure, results.report_artifact(f"{name}.png")))
    retry.call(lambda: client.log_text(run_id, _page(name, html), results.report_artifact(f"{name}.html")))
    retry.call(lambda: client.log_dict(run_id, report, results.report_artifact("report.json")))
    retry.call(lambda: client.log_table(run_id, data=_table(report), artifact_file=results.report_artifact("points.json")))
    written: list[Path] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        figure.savefig(out_dir / f"{name}.png")
        (out_dir / f"{name}.html").write_text(_page(name, html))
        (out_dir / "report.json").write_text(json.dumps(report, indent=2))
        written = [out_dir / f"{name}.png", out_dir / f"{name}.html", out_dir / "report.json"]
    plt.close(figure)
    return written


def curve_points(report: dict) -> dict[str, list[tuple[int, float]]]:
    """Each curve's means and CI bounds as metric series, stepped by the axis value (count axes)
    or by the point's position (other axes; the description names the positions)."""
    if "curves" not in report:
        return {}
    points: dict[str, list[tuple[int, float]]] = {}
    metric = report["metric"]
    for line, curve in report["curves"].items():
        for position, point in enumerate(curve["points"]):
            if not point["n"]:
                continue
            step = round(point["x"]) if report.get("x_is_count") else position
            for statistic in ("mean", "ci_low", "ci_high"):
                if point[statistic] is None:  # one seed: no interval, so no bound (report.json has null)
                    continue
                # Scores lie in [0, 100]; a t-interval over few seeds can reach past either end.
                value = min(100.0, max(0.0, point[statistic]))
                points.setdefault(results.curve_key(line, metric, statistic), []).append((step, value))
    return points


def comparison_metrics(report: dict) -> dict[str, float]:
    """Each paired comparison's difference, interval, corrected p and P(A beats B) as parent-run
    metrics (keys longer than MLflow allows are left to report.json)."""
    found = {}
    section = report.get("comparisons") or {}
    for entry in section.get("comparisons", []):
        name = " | ".join(x for x in (entry["group"], entry["encoding"]) if x) + f" | {entry['a']} vs {entry['b']}"
        for statistic, value in (("diff", entry["diff"]), ("ci_low", entry["ci_low"]), ("ci_high", entry["ci_high"]),
                                 ("p_adjusted", entry["p_adjusted"]), ("prob_a_beats_b", entry["prob_a_beats_b"])):
            key = results.comparison_key(name, report["metric"], statistic)
            if len(key) <= results.MAX_KEY_LENGTH:
                found[key] = float(value)
    return found


def _point(point: dict, compact: bool = False) -> str:
    """A point's mean with its 95% interval: "41.2 [33.0, 49.4]", or compact "41.2±8.2(n=3)"."""
    if not point["n"]:
        return "missing"
    if point["n"] == 1:
        return f"{point['mean']:.1f}{'' if compact else ' '}(n=1, no interval)"
    if compact:
        return f"{point['mean']:.1f}±{point['ci_high'] - point['mean']:.1f}(n={point['n']})"
    return f"{point['mean']:.1f} [{point['ci_low']:.1f}, {point['ci_high']:.1f}]"


def report_markdown(report: dict) -> str:
    """The report as markdown, for the parent run's description in the MLflow UI."""
    cells = report["cells"]
    name, metric = report["experiment"], report["metric"]
    lines = [f"### {name}: held-out {metric} (%), mean over seeds [95% t-interval, clipped to 0-100]", "",
             f"{cells['done']}/{cells['total']} cells done, {cells['failed']} failed, {cells['missing']} missing.", ""]
    if "bars" in report:
        bars = report["bars"]
        lines += ["| setting | " + " | ".join(bars["groups"]) + " |", "|---" * (len(bars["groups"]) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(_point(points[g]) for g in bars["groups"]) + " |"
                  for name, points in bars["series"].items()]
    elif "matrix" in report:
        matrix = report["matrix"]
        lines += [f"| {matrix['row_label']} \\ {matrix['column_label']} | " + " | ".join(matrix["columns"]) + " |",
                  "|---" * (len(matrix["columns"]) + 1) + "|"]
        lines += [f"| {row} | " + " | ".join(_point(matrix["cells"][row][c]) for c in matrix["columns"]) + " |"
                  for row in matrix["rows"]]
    else:
        steps = "the axis value" if report.get("x_is_count") else "the point's position (0, 1, ...)"
        lines += [f"x: {report['x_label']}. Curve metrics `curve/<line>/{metric}` are stepped by {steps}.", ""]
        labels = [p["label"] for p in next(iter(report["curves"].values()))["points"]] if report["curves"] else []
        lines += ["| line | " + " | ".join(labels) + " | outcome | knee [95% interval], support | trend |",
                  "|---" * (len(labels) + 4) + "|"]
        for line, curve in report["curves"].items():
            outcome = curve.get("outcome") or "-"
            knee = knee_text(curve) or "-"
            spearman = spearman_text(curve.get("spearman")) or "-"
            lines.append(f"| {line} | " + " | ".join(_point(p) for p in curve["points"]) + f" | {outcome} | {knee} | {spearman} |")
        start = report["curves"].get("mean", {}).get("untuned")
        if start:
            lines += ["", f"Untuned model (not in the fits): {_point(start)}."]
    if report.get("comparisons"):
        lines += ["", *(line.strip() for line in comparison_lines(report["comparisons"]))]
    if report.get("baselines"):
        lines += ["", "Baselines (mean line): " + ", ".join(
            f"{b} {scores['mean']:.1f}" for b, scores in report["baselines"].items() if "mean" in scores) + "."]
    if cells["not_done"]:
        lines += ["", "Not done:"] + [f"- {c['status'].upper()} {c['name']}" + (f": {c['error']}" if c["error"] else "")
                                      for c in cells["not_done"]]
    lines += ["", f"Figures: artifacts `{results.report_artifact(name + '.png')}`, "
                  f"`{results.report_artifact(name + '.html')}`; numbers: `{results.report_artifact('report.json')}`."]
    return "\n".join(lines)


def _page(title: str, fragment: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{fragment}</body></html>"


def _table(report: dict) -> dict[str, list]:
    """Points as columns (line, x, label, n, mean, ci_low, ci_high) for mlflow's table view."""
    columns: dict[str, list] = {k: [] for k in ("line", "x", "label", "n", "mean", "ci_low", "ci_high")}
    # A grid of points (bars: setting x cluster; matrix: row x column) as (line, label, point) rows.
    grid = []
    if "bars" in report:
        grid = [(group, name, point) for name, points in report["bars"]["series"].items()
                for group, point in points.items()]
    elif "matrix" in report:
        grid = [(row, column, point) for row, cells in report["matrix"]["cells"].items()
                for column, point in cells.items()]
    if grid:
        for line, label, point in grid:
            for key, value in (("line", line), ("x", 0), ("label", label), ("n", point["n"]), ("mean", point["mean"]),
                               ("ci_low", point["ci_low"]), ("ci_high", point["ci_high"])):
                columns[key].append(value)
        return columns
    for line, curve in report["curves"].items():
        for point in curve["points"]:
            columns["line"].append(line)
            for key in ("x", "label", "n", "mean", "ci_low", "ci_high"):
                columns[key].append(point[key])
    return columns


def print_report(report: dict) -> None:
    """A plain-text digest: points, fits, knees, trends and baselines."""
    cells = report["cells"]
    print(f"Report '{report['experiment']}' ({report['metric']}): {cells['done']}/{cells['total']} cells done, "
          f"{cells['failed']} failed, {cells['missing']} missing")
    for cell in cells["not_done"]:
        print(f"  {cell['status'].upper():<8} {cell['name']}" + (f": {cell['error']}" if cell["error"] else ""))
    for name, scores in report["baselines"].items():
        print(f"  baseline {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    if report.get("comparisons"):
        print("\n".join(comparison_lines(report["comparisons"])))
    if report.get("comparisons_error"):
        print(f"  no paired comparisons: {report['comparisons_error']}")
    if "bars" in report:
        for name, points in report["bars"]["series"].items():
            print(f"  {name}: " + ", ".join(f"{g} {_point(p)}" for g, p in points.items()))
        return
    if "matrix" in report:
        matrix = report["matrix"]
        print(f"  {matrix['row_label']} \\ {matrix['column_label']}: "
              + " ".join(f"{c:>14}" for c in matrix["columns"]))
        for row in matrix["rows"]:
            points = [matrix["cells"][row][c] for c in matrix["columns"]]
            print(f"  {row:<16} " + " ".join(f"{_point(p, compact=True):>16}" for p in points))
        return
    for line, curve in report["curves"].items():
        points = " ".join(f"{p['label']}:{_point(p, compact=True)}" if report.get("axis") else _point(p)
                          for p in curve["points"])
        if curve.get("untuned"):
            points = f"untuned:{_point(curve['untuned'], compact=True)} " + points
        extra = []
        if curve.get("outcome"):
            extra.append(curve["outcome"])
        if knee_text(curve):
            extra.append(f"knee {knee_text(curve)}")
        if spearman_text(curve.get("spearman")):
            extra.append(spearman_text(curve["spearman"]))
        print(f"  {line:<16} {points}" + (f"  | {', '.join(extra)}" if extra else ""))
