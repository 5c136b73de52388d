"""build_report is pure: typed records in, every number behind the figures out."""

import pytest

from ablate.analyse.collect import CellRecord, SweepRecords
from ablate.analyse.plots import report_figures
from ablate.analyse.report import build_report
from ablate.analyse.report_model import Report
from ablate.baselines import BaselineScores
from ablate.plan import Cell, CellSettings
from ablate.spec import DataSpec, EvalSpec, TrainSpec

TRAIN = TrainSpec(steps=10, batch_size=4, learning_rate=1e-3, max_source_length=64, max_target_length=8, encoding="def")


def _cell(name, axis_values, model="t5-tiny", train_encoding="def", test_encodings=None) -> Cell:
    data = DataSpec(source="synthetic", instances_per_task=8, train_clusters=axis_values.get("train_clusters"))
    settings = CellSettings(data=data, model=model,
                            train=TRAIN.model_copy(update={"encoding": train_encoding}),
                            eval=EvalSpec(encodings=test_encodings), seed=axis_values["seed"], data_fingerprint="f")
    return Cell(id=name, name=name, axis_values=axis_values, settings=settings)


def _record(clusters, seed, status="done", nli=50.0, qa=10.0):
    metrics = {"def/cluster/nli/rougeL": nli, "def/cluster/closed_book_qa/rougeL": qa, "def/rougeL": (nli + qa) / 2}
    return CellRecord(_cell(f"n={len(clusters)} seed={seed}", {"train_clusters": clusters, "seed": seed}),
                      status=status, metrics=metrics if status == "done" else {},
                      error="boom" if status == "failed" else None)


def _sweep(records, baselines=None):
    return SweepRecords("clusters", "1", "parent", "sqlite:///x.db", records, baselines or {})


def test_clusters_curve_has_a_line_per_cluster_plus_mean_and_counts_clusters():
    orders = [["a"], ["a", "b"], ["a", "b", "c"]]
    records = [_record(c, s, nli=40 + 10 * len(c) + s, qa=5 * len(c)) for c in orders for s in (0, 1, 2)]
    baselines = {"copy_demo": BaselineScores(overall={"rougeL": 31.0},
                                             per_cluster={"nli": {"rougeL": 40.0}, "closed_book_qa": {"rougeL": 20.0}})}
    report = build_report(_sweep(records, baselines), "rougeL")
    assert report.curves.axis == "train_clusters" and report.curves.x_label == "number of training clusters"
    assert set(report.curves.lines) == {"mean", "nli", "closed_book_qa"}
    nli = report.curves.lines["nli"].points
    assert [p.x for p in nli] == [1.0, 2.0, 3.0] and [p.n for p in nli] == [3, 3, 3]
    assert nli[0].mean == 51.0 and nli[0].label == "1 (+a)"
    mean = report.curves.lines["mean"].points
    assert mean[2].mean == (71.0 + 15.0) / 2
    assert report.curves.lines["mean"].spearman.rho == 1.0 and report.curves.lines["mean"].spearman.n == 3
    assert report.baselines == {"copy_demo": {"mean": 30.0, "nli": 40.0, "closed_book_qa": 20.0}}


def test_failed_and_missing_cells_are_reported_not_dropped():
    records = [_record(["a"], 0), _record(["a"], 1, status="failed"), _record(["a", "b"], 0, status="to run"),
               _record(["a", "b", "c"], 0)]
    report = build_report(_sweep(records), "rougeL")
    assert report.cells.done == 2 and report.cells.failed == 1 and report.cells.missing == 1
    assert {c.status for c in report.cells.not_done} == {"failed", "missing"}
    points = report.curves.lines["mean"].points
    assert points[0].n == 1 and points[0].failed == ["n=1 seed=1"]
    assert points[1].n == 0 and points[1].missing == ["n=2 seed=0"] and points[1].mean is None
    figure, html = report_figures(report)
    assert figure.axes and "plotly" in html


def test_encoding_matrix():
    records = []
    for train in ("def", "pos2"):
        for seed in (0, 1):
            metrics = {f"{test}/cluster/nli/rougeL": (60.0 if train == test else 30.0) + seed for test in ("def", "pos2")}
            cell = _cell(f"{train}{seed}", {"train_encoding": train, "seed": seed}, train_encoding=train,
                         test_encodings=["def", "pos2"])
            records.append(CellRecord(cell, "done", metrics))
    report = build_report(_sweep(records), "rougeL")
    matrix = report.matrix
    assert matrix.rows == ["def", "pos2"] and matrix.columns == ["def", "pos2"]
    assert matrix.cell("def", "def").mean == 60.5 and matrix.cell("def", "pos2").mean == 30.5
    figure, html = report_figures(report)
    assert figure.axes and "heatmap" in html.lower()


def test_model_size_points_sit_at_their_parameter_counts_and_are_named_with_them():
    sizes = {"t5-nano": 240_640.0, "t5-tiny": 1_399_424.0, "t5-mini": 7_387_392.0}
    records = [CellRecord(_cell(f"model={m} seed={s}", {"model": m, "seed": s}, model=m), "done",
                          {"def/cluster/nli/rougeL": 40.0 + s, "num_parameters": n})
               for m, n in sizes.items() for s in (0, 1)]
    report = build_report(_sweep(records), "rougeL")
    points = report.curves.lines["mean"].points
    assert [p.x for p in points] == sorted(sizes.values()) and report.curves.log_x
    assert [p.label for p in points] == ["t5-nano (0.24M)", "t5-tiny (1.4M)", "t5-mini (7.4M)"]


def test_page_summary_names_a_knee_only_inside_the_measured_range():
    from ablate.analyse.dashboard import _summary

    def report(knee, inside):
        return Report.model_validate({
            "experiment": "e", "experiment_id": "1", "metric": "rougeL", "sweep": "e", "parent_run_id": "p",
            "aggregate": "clusters", "baselines": {},
            "cells": {"done": 3, "total": 3, "failed": 0, "missing": 0, "not_done": []},
            "curves": {"axis": "instances_per_task", "x_label": "x", "encoding": "def", "x_is_count": True,
                       "log_x": True, "lines": {"mean": {
                           "points": [], "spearman": {"rho": 0.9, "n": 6, "p": 0.01, "exact": True}, "knee": knee,
                           "knee_ci": [30.0, 80.0], "knee_inside_range": inside, "knee_support": 0.91,
                           "outcome": "saturating"}}}})

    assert "knee at 55.7 [30, 80], support 0.91" in _summary(report(55.7, True))
    assert "Spearman 0.90 (n=6, p=0.01)" in _summary(report(55.7, True))
    outside = _summary(report(1729.0, False))
    assert "plateau beyond the range" in outside and "knee at 1.73e+03 (" not in outside


def test_the_curve_becomes_parent_run_metrics_and_the_report_a_markdown_description():
    from ablate.analyse.publish import curve_points, report_markdown

    orders = [["a"], ["a", "b"], ["a", "b", "c"]]
    records = [_record(c, s, nli=40 + 10 * len(c) + s, qa=5 * len(c)) for c in orders for s in (0, 1, 2)]
    records.append(_record(["a", "b", "c"], 3, status="failed"))
    report = build_report(_sweep(records), "rougeL")
    points = curve_points(report)
    assert [step for step, _ in points["curve/mean/rougeL"]] == [1, 2, 3], "stepped by the number of clusters"
    assert points["curve/nli/rougeL"][0] == (1, 51.0)
    low, high = points["curve/nli/rougeL_ci_low"][0][1], points["curve/nli/rougeL_ci_high"][0][1]
    assert low < 51.0 < high
    text = report_markdown(report)
    assert "| line | 1 (+a) | 2 (+b) | 3 (+c) |" in text and "| nli | 51.0 [" in text
    assert "FAILED n=3 seed=3: boom" in text and "report/clusters.png" in text


def test_a_single_seed_point_says_it_has_no_interval():
    from ablate.analyse.publish import report_markdown

    records = [_record(c, 0) for c in (["a"], ["a", "b"], ["a", "b", "c"])]
    assert "(n=1, no interval)" in report_markdown(build_report(_sweep(records), "rougeL"))


def test_the_untuned_point_is_reported_apart_from_the_fitted_curve():
    orders = [[], ["a"], ["a", "b"], ["a", "b", "c"]]
    records = [_record(c, s, nli=10 * len(c) + s, qa=5 * len(c)) for c in orders for s in (0, 1)]
    report = build_report(_sweep(records), "rougeL")
    mean = report.curves.lines["mean"]
    assert [p.x for p in mean.points] == [1.0, 2.0, 3.0], "x = 0 is not on the curve"
    assert mean.untuned.n == 2 and mean.untuned.mean == 0.25
    assert report.curves.lines["nli"].untuned.values == [0.0, 1.0]
    figure, html = report_figures(report)
    assert "untuned model" in [t.get_text() for t in figure.axes[0].get_legend().get_texts()][-1]


def test_zero_versus_few_shot_draws_flan_fig_3_bars():
    records = []
    for steps in (0, 800):
        for seed in (0, 1):
            cell = _cell(f"steps={steps} seed={seed}", {"train.steps": steps, "seed": seed},
                         test_encodings=["def", "def+pos2"])
            cell = Cell(cell.id, cell.name, cell.axis_values, cell.settings.model_copy(
                update={"train": cell.settings.train.model_copy(update={"steps": steps})}))
            metrics = {f"{enc}/cluster/nli/rougeL": (5.0 if enc == "def" else 20.0) if steps == 0 else 60.0 + seed
                       for enc in ("def", "def-pos2")}
            records.append(CellRecord(cell, "done", metrics))
    report = build_report(_sweep(records), "rougeL")
    bars = report.bars
    assert bars.groups == ["nli", "mean"]
    assert bars.series["untuned, zero-shot (def)"]["nli"].mean == 5.0
    assert bars.series["untuned, few-shot (def+pos2)"]["nli"].mean == 20.0
    assert bars.series["instruction-tuned, zero-shot (def)"]["mean"].mean == 60.5
    figure, html = report_figures(report)
    assert len(figure.axes[0].patches) == 6 and "bar" in html


def test_the_mean_line_can_be_the_official_per_instance_score():
    orders = [["a"], ["a", "b"], ["a", "b", "c"]]
    records = [_record(c, s, nli=40 + 10 * len(c), qa=5 * len(c)) for c in orders for s in (0, 1)]
    for record in records:  # the per-instance score weights the clusters by their instances
        record.metrics["def/rougeL"] = 0.8 * record.metrics["def/cluster/nli/rougeL"] + \
            0.2 * record.metrics["def/cluster/closed_book_qa/rougeL"]
    by_clusters = build_report(_sweep(records), "rougeL")
    overall = build_report(_sweep(records), "rougeL", aggregate="overall")
    assert by_clusters.curves.lines["mean"].points[0].mean == (50 + 5) / 2
    assert overall.curves.lines["mean"].points[0].mean == pytest.approx(0.8 * 50 + 0.2 * 5)
    assert overall.aggregate == "overall" and overall.curves.lines["nli"] == by_clusters.curves.lines["nli"]


def test_leave_one_cluster_out_draws_fig_3_with_each_model_on_its_own_cluster():
    """Each cell answers only for the cluster it held out; the mean bar averages the clusters' models per seed."""
    records = []
    scores = {("nli", 0): 5.0, ("nli", 800): 60.0, ("commonsense", 0): 10.0, ("commonsense", 800): 40.0}
    for (held_out, steps), score in scores.items():
        for seed in (0, 1):
            cell = _cell(f"{held_out} steps={steps} seed={seed}",
                         {"held_out_cluster": held_out, "train.steps": steps, "seed": seed},
                         test_encodings=["def", "def+pos2"])
            cell = Cell(cell.id, cell.name, cell.axis_values, cell.settings.model_copy(
                update={"train": cell.settings.train.model_copy(update={"steps": steps})}))
            # Every cell also scores some other cluster: a leave-one-out report must ignore it.
            metrics = {f"{enc}/cluster/{held_out}/acc": score + seed + (3.0 if enc == "def-pos2" else 0.0)
                       for enc in ("def", "def-pos2")}
            metrics.update({f"{enc}/cluster/other/acc": 99.0 for enc in ("def", "def-pos2")})
            records.append(CellRecord(cell, "done", metrics))
    report = build_report(_sweep(records), "acc")
    bars = report.bars
    assert bars.groups == ["nli", "commonsense", "mean"]
    tuned = bars.series["instruction-tuned, zero-shot (def)"]
    assert tuned["nli"].mean == 60.5 and tuned["commonsense"].mean == 40.5
    assert tuned["mean"].values == [50.0, 51.0] and tuned["mean"].n == 2  # per seed: (60+40)/2, (61+41)/2
    assert bars.series["untuned, few-shot (def+pos2)"]["nli"].mean == 8.5


def test_a_refined_sweep_marks_each_point_by_the_rounds_that_added_its_cells():
    from ablate.plan import SweepPlan

    orders = [["a"], ["a", "b"], ["a", "b", "c"]]
    records = [_record(c, s, nli=40 + 10 * len(c) + s) for c in orders for s in (0, 1)]
    plan = SweepPlan("clusters", [r.cell for r in records])
    first = [r.cell for r in records if r.cell.settings.seed == 0 or len(r.cell.axis_values["train_clusters"]) == 1]
    plan.add_round("refine", first, {c.id: "initial design" for c in first})
    later = [r.cell for r in records if r.cell not in first]
    plan.add_round("refine", later, {c.id: "a seed where the knee interval is widest" for c in later})
    sweep = SweepRecords("clusters", "1", "parent", "sqlite:///x.db", records, {}, plan=plan)
    report = build_report(sweep, "rougeL")
    points = report.curves.lines["mean"].points
    assert points[1].cells == ["n=2 seed=0", "n=2 seed=1"]
    assert [report.rounds_of(p) for p in points] == [[0], [0, 1], [0, 1]]
    assert report.rounds["n=3 seed=1"].reason == "a seed where the knee interval is widest"
    figure, _ = report_figures(report)
    assert [t.get_text() for t in figure.axes[0].texts if t.get_text().startswith("r")] == ["r0", "r0,1", "r0,1"]
    # One round (a grid): nothing to mark.
    assert build_report(_sweep(records), "rougeL").rounds_of(points[1]) == []


def test_report_json_is_strict_json_and_reads_back_into_the_report():
    """NaN (one-seed signal-to-noise, an unplaceable point) and infinities (an undefined AICc)
    are null in report.json, which reads back into the typed report."""
    import json

    from ablate.analyse.report_model import Fit, SignalToNoise

    records = [_record(c, 0) for c in (["a"], ["a", "b"], ["a", "b", "c"])]
    report = build_report(_sweep(records), "rougeL")
    curve = report.curves.lines["mean"].model_copy(update={"fit": Fit(model="flat", params={"c": 1.0},
                                                                      aicc=float("inf"), rss=0.0)})
    report = report.model_copy(update={"curves": report.curves.model_copy(update={"lines": {"mean": curve}})})
    text = json.dumps(report.to_json(), allow_nan=False)  # raises on NaN or Infinity
    back = Report.model_validate(json.loads(text))
    assert back.curves.lines["mean"].fit.aicc is None and back.curves.lines["mean"].points == curve.points
    assert not SignalToNoise(snr=float("nan"), spread=0.0, seed_sd=0.0, df=None).known


def test_no_finished_cell_gives_no_per_metric_bars():
    from ablate.plan import Cell

    evaluators = EvalSpec(evaluators=["generate", "preference"])
    records = []
    for position, lr in enumerate((1e-3, 3e-4)):
        cell = _cell(f"lr={lr}", {"train.learning_rate": lr, "seed": 0})
        cell = Cell(cell.id, cell.name, cell.axis_values, cell.settings.model_copy(update={"eval": evaluators}))
        records.append(CellRecord(cell, "failed", {}, error="boom"))
    report = build_report(_sweep(records), "rougeL")
    assert report.bars is None and report.cells.failed == 2
    report_figures(report)  # draws (the cells are listed as not done)
