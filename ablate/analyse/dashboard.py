"""`ablate dashboard PAGE.yaml --out site/`: a static HTML page of several sweeps' figures and tables.

The page is self-contained (figures embedded, plotly.js inline once), so it opens from disk with
no server; run links point at the MLflow UI.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ablate.analyse.report_model import Report
from ablate.credentials import redact
from ablate.errors import AblateError, did_you_mean, problem_list, validation_problems


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    experiment: str = Field(description="MLflow experiment (= sweep name)")
    title: str
    notes: str = ""
    show: list[Literal["figure", "interactive", "table"]] = ["figure", "interactive", "table"]
    spec: str | None = Field(None, description="the spec that makes this experiment, for the 'not run yet' hint")


class Page(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    title: str
    intro: str = ""
    tracking_uri: str | None = None
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    metric: str | None = Field(None, description="a declared metric; null: each sweep's headline metric")
    sections: list[Section] = Field(min_length=1)

    @field_validator("metric")
    @classmethod
    def _declared(cls, value: str | None) -> str | None:
        from ablate.results import is_metric, metric_specs

        if value is not None and not is_metric(value):
            raise ValueError(f"unknown metric '{value}'. {did_you_mean(value, list(metric_specs()))}")
        return value


def load_page(path: str | Path) -> Page:
    from ablate.spec import read_yaml

    raw = read_yaml(path)
    try:
        return Page.model_validate(raw)
    except ValidationError as exc:
        raise problem_list(validation_problems(exc, Page), what="in the dashboard page", file=str(path),
                           fix="see dashboards/instruction_tuning.yaml for the fields.") from None


def _png_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _table(report: Report) -> str:
    from ablate.analyse.publish import _table as columns_of

    columns = columns_of(report)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for i in range(len(columns["line"])):
        cells = []
        for key in columns:
            value = columns[key][i]
            cells.append(f"<td>{value:.2f}</td>" if isinstance(value, float) else f"<td>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _summary(report: Report) -> str:
    from ablate.analyse.report import MEAN_LINE

    cells = report.cells
    parts = [f"{cells.done}/{cells.total} cells done"]
    if cells.failed or cells.missing:
        parts.append(f"<span class='bad'>{cells.failed} failed, {cells.missing} missing</span>")
    mean = report.curves.lines.get(MEAN_LINE) if report.curves is not None else None
    if mean is not None:
        if mean.spearman is not None:
            parts.append(mean.spearman.text())
        if mean.knee_in_range is not None:
            parts.append(f"knee at {mean.knee_text()}")
        elif mean.knee is not None:
            parts.append(f"fitted plateau beyond the range (knee at {mean.knee:.3g})")
        elif mean.outcome:
            parts.append(f"outcome: {mean.outcome} (no plateau in range)")
    for name, value in report.baseline_means().items():
        parts.append(f"{name} baseline {value:.1f}")
    return " · ".join(parts)


def _comparisons(report: Report) -> str:
    """The paired comparisons that hold (significant after correction), the rest counted, and
    each group's decision reliability: where a reader of the page sees which differences to trust."""
    from ablate.analyse.compare_sweep import comparison_lines

    section = report.comparisons
    if section is None or not section.comparisons:
        return ""
    held = [c for c in section.comparisons if c.significant]
    rows = "".join(f"<tr><td>{html.escape(' '.join(x for x in (c.group, c.encoding) if x))}</td>"
                   f"<td>{html.escape(c.a)} - {html.escape(c.b)}</td><td>{c.diff:+.2f}</td>"
                   f"<td>[{c.ci_low:+.2f}, {c.ci_high:+.2f}]</td><td>{c.p_adjusted:.2g}</td>"
                   f"<td>{c.prob_a_beats_b:.2f}</td></tr>" for c in held)
    table = (f"<table><thead><tr><th>where</th><th>A - B</th><th>diff</th><th>95% interval</th><th>p (corrected)</th>"
             f"<th>P(A beats B)</th></tr></thead><tbody>{rows}</tbody></table>") if held else ""
    details = "<br>".join(html.escape(line) for line in comparison_lines(section))
    return (f"<p class='comparisons'>{len(held)} of {len(section.comparisons)} paired comparisons along "
            f"{html.escape(section.axis)} hold after {html.escape(section.correction)} correction.</p>{table}"
            f"<details><summary>Every comparison, variance and reliability</summary><p class='mono'>{details}</p>"
            f"</details>")


def render_page(page: Page, tracking_uri: str) -> str:
    """The dashboard's HTML (one string, no external resources)."""
    import matplotlib.pyplot as plt

    from ablate.analyse.plots import report_figures
    from ablate.analyse.report import make_report

    sections, plotly_included = [], False
    for section in page.sections:
        body = f"<h2>{html.escape(section.title)}</h2>"
        if section.notes:
            body += f"<p class='notes'>{html.escape(section.notes)}</p>"
        try:
            report = make_report(tracking_uri, section.experiment, page.metric)
        except AblateError as exc:
            hint = f" Run: <code>ablate sweep {html.escape(section.spec)}</code>" if section.spec else ""
            sections.append(body + f"<p class='bad'>Not available: {html.escape(redact(exc.message))}{hint}</p>")
            continue
        figure, interactive = report_figures(report, include_plotlyjs=not plotly_included)
        plotly_included = plotly_included or "interactive" in section.show
        link = (f"{page.mlflow_ui_url}/#/experiments/{report.experiment_id}/runs/{report.parent_run_id}"
                "?workflowType=machine_learning")
        body += f"<p class='summary'>{_summary(report)} · <a href='{link}'>parent run in MLflow</a></p>"
        if "figure" in section.show:
            body += f"<img class='figure' alt='{html.escape(section.title)}' src='{_png_data_uri(figure)}'>"
        if "interactive" in section.show:
            body += f"<div class='interactive'>{interactive}</div>"
        if "table" in section.show:
            body += f"<details><summary>Numbers</summary>{_table(report)}</details>"
        body += _comparisons(report)
        plt.close(figure)
        sections.append(body)
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "img.figure{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px}.bad{color:#b00}.summary{color:#444}"
             ".mono{font-family:monospace;font-size:11px;white-space:pre-wrap}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(page.title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(page.title)}</h1>"
            f"<p>{html.escape(page.intro)}</p>{''.join(f'<section>{s}</section>' for s in sections)}"
            f"<footer><p>Made by ablate from {html.escape(redact(tracking_uri))}.</p></footer></body></html>")


def write_dashboard(page_file: str, out_dir: str, tracking_uri: str | None) -> Path:
    from ablate.track import resolve_tracking_uri

    page = load_page(page_file)
    uri = resolve_tracking_uri(tracking_uri or page.tracking_uri, Path.cwd())
    text = render_page(page, uri)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(text, encoding="utf-8")
    return out / "index.html"
