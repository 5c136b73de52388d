"""`ablate report` and `ablate dashboard` on a real sweep's MLflow store, the page checked in headless Chromium."""

import json

import pytest

from ablate.analyse.report_model import Report
from tests.conftest import ablate_cli

pytestmark = pytest.mark.slow


def test_report_json_gives_points_fits_and_baselines(smoke_sweep):
    workdir, _ = smoke_sweep
    result = ablate_cli("report", "smoke", "--json", "--out", str(workdir / "report-json"), cwd=workdir)
    assert result.returncode == 0, result.stderr
    report = Report.model_validate(json.loads(result.stdout))  # the typed report, back from its JSON
    assert report.curves.axis == "instances_per_task" and report.cells.done == 4
    mean = report.curves.lines["mean"]
    assert [p.x for p in mean.points] == [8.0, 16.0] and all(p.n == 2 for p in mean.points)
    assert all(p.ci_low <= p.mean <= p.ci_high for p in mean.points)
    assert set(report.baselines) == {"copy_demo", "copy_input"}
    assert (workdir / "report-json" / "smoke.png").stat().st_size > 10_000


def test_unknown_experiment_is_a_clear_error(smoke_sweep):
    workdir, _ = smoke_sweep
    result = ablate_cli("report", "no_such_sweep", cwd=workdir)
    assert result.returncode == 2 and "no MLflow experiment named 'no_such_sweep'" in result.stderr
    assert "smoke" in result.stderr


def test_dashboard_renders_in_a_real_browser(smoke_sweep, tmp_path, chrome):
    from PIL import Image

    workdir, _ = smoke_sweep
    page = tmp_path / "page.yaml"
    page.write_text("title: Smoke dashboard\nsections:\n"
                    "  - {experiment: smoke, title: Instances per task}\n"
                    "  - {experiment: never_ran, title: Not yet, spec: sweeps/never.yaml}\n")
    result = ablate_cli("dashboard", str(page), "--out", str(tmp_path / "site"), cwd=workdir)
    assert result.returncode == 0, result.stderr
    index = tmp_path / "site" / "index.html"
    chrome.get(index.as_uri())
    assert chrome.title == "Smoke dashboard"
    errors = [entry for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    images = chrome.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    assert images and all(done and width > 300 and height > 200 for done, width, height in images)
    assert chrome.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length;") >= 1
    body = chrome.find_element("tag name", "body").text
    assert "Not available" in body and "ablate sweep sweeps/never.yaml" in body
    assert "4/4 cells done" in body
    shot = tmp_path / "page.png"
    chrome.save_screenshot(str(shot))
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "the screenshot is blank"
