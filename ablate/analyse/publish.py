"""Side effects of a report: files under --out and artifacts of the sweep's parent MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

from ablate import results
from ablate.analyse.plots import report_figures
from ablate.track import RetryPolicy


def publish_report(report: dict, tracking_uri: str, out_dir: Path | None) -> list[Path]:
    """Write report.json, <name>.png and <name>.html to `out_dir` and log them to the parent run."""
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient

    figure, html = report_figures(report)
    name = report["experiment"]
    client, retry = MlflowClient(tracking_uri=tracking_uri), RetryPolicy()
    run_id = report["parent_run_id"]
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


def _page(title: str, fragment: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{fragment}</body></html>"


def _table(report: dict) -> dict[str, list]:
    """Points as columns (line, x, label, n, mean, ci_low, ci_high) for mlflow's table view."""
    columns: dict[str, list] = {k: [] for k in ("line", "x", "label", "n", "mean", "ci_low", "ci_high")}
    if "matrix" in report:
        for row, cells in report["matrix"]["cells"].items():
            for column, point in cells.items():
                for key, value in (("line", row), ("x", 0), ("label", column), ("n", point["n"]),
                                   ("mean", point["mean"]), ("ci_low", point["ci_low"]), ("ci_high", point["ci_high"])):
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
    if "matrix" in report:
        matrix = report["matrix"]
        print(f"  {matrix['row_label']} \\ {matrix['column_label']}: "
              + " ".join(f"{c:>14}" for c in matrix["columns"]))
        for row in matrix["rows"]:
            points = [matrix["cells"][row][c] for c in matrix["columns"]]
            print(f"  {row:<16} " + " ".join(f"{p['mean']:>8.2f}±{p['ci_high'] - p['mean']:<5.1f}" if p["n"]
                                             else f"{'missing':>14}" for p in points))
        return
    for line, curve in report["curves"].items():
        points = " ".join(f"{p['label']}:{p['mean']:.1f}±{p['ci_high'] - p['mean']:.1f}(n={p['n']})"
                          if p["n"] else f"{p['label']}:missing" for p in curve["points"])
        extra = []
        if curve.get("spearman") is not None:
            extra.append(f"spearman {curve['spearman']:.2f}")
        if curve.get("fit"):
            extra.append(f"fit {curve['fit']['model']}")
        if curve.get("knee") is not None:
            low, high = curve["knee_ci"] or (None, None)
            ci = f" [{low:.3g}, {high:.3g}]" if low is not None else ""
            where = "" if curve.get("knee_inside_range") else " (outside the measured range: no plateau reached)"
            extra.append(f"knee {curve['knee']:.3g}{ci}{where}")
        print(f"  {line:<16} {points}  | {', '.join(extra)}")
