"""build_report is pure: typed records in, every number behind the figures out."""

from ablate.analyse.collect import CellRecord, SweepRecords
from ablate.analyse.plots import report_figures
from ablate.analyse.report import build_report
from ablate.baselines import BaselineScores
from ablate.plan import Cell, CellSettings
from ablate.spec import DataSpec, EvalSpec, TrainSpec

TRAIN = TrainSpec(steps=10, batch_size=4, learning_rate=1e-3, max_source_length=64, max_target_length=8, encoding="def")


def _cell(name, axis_values, model="t5-tiny", train_encoding="def", test_encodings=None) -> Cell:
    settings = CellSettings(data=DataSpec(source="synthetic", instances_per_task=8), model=model,
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
    assert report["axis"] == "train_clusters" and report["x_label"] == "number of training clusters"
    assert set(report["curves"]) == {"mean", "nli", "closed_book_qa"}
    nli = report["curves"]["nli"]["points"]
    assert [p["x"] for p in nli] == [1.0, 2.0, 3.0] and [p["n"] for p in nli] == [3, 3, 3]
    assert nli[0]["mean"] == 51.0 and nli[0]["label"] == "1 (+a)"
    mean = report["curves"]["mean"]["points"]
    assert mean[2]["mean"] == (71.0 + 15.0) / 2
    assert report["curves"]["mean"]["spearman"] == 1.0
    assert report["baselines"] == {"copy_demo": {"mean": 30.0, "nli": 40.0, "closed_book_qa": 20.0}}


def test_failed_and_missing_cells_are_reported_not_dropped():
    records = [_record(["a"], 0), _record(["a"], 1, status="failed"), _record(["a", "b"], 0, status="missing"),
               _record(["a", "b", "c"], 0)]
    report = build_report(_sweep(records), "rougeL")
    assert report["cells"]["done"] == 2 and report["cells"]["failed"] == 1 and report["cells"]["missing"] == 1
    assert {c["status"] for c in report["cells"]["not_done"]} == {"failed", "missing"}
    points = report["curves"]["mean"]["points"]
    assert points[0]["n"] == 1 and points[0]["failed"] == ["n=1 seed=1"]
    assert points[1]["n"] == 0 and points[1]["missing"] == ["n=2 seed=0"] and points[1]["mean"] is None
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
    matrix = report["matrix"]
    assert matrix["rows"] == ["def", "pos2"] and matrix["columns"] == ["def", "pos2"]
    assert matrix["cells"]["def"]["def"]["mean"] == 60.5 and matrix["cells"]["def"]["pos2"]["mean"] == 30.5
    figure, html = report_figures(report)
    assert figure.axes and "heatmap" in html.lower()


def test_model_size_points_sit_at_their_parameter_counts_and_are_named_with_them():
    sizes = {"t5-nano": 240_640.0, "t5-tiny": 1_399_424.0, "t5-mini": 7_387_392.0}
    records = [CellRecord(_cell(f"model={m} seed={s}", {"model": m, "seed": s}, model=m), "done",
                          {"def/cluster/nli/rougeL": 40.0 + s, "num_parameters": n})
               for m, n in sizes.items() for s in (0, 1)]
    report = build_report(_sweep(records), "rougeL")
    points = report["curves"]["mean"]["points"]
    assert [p["x"] for p in points] == sorted(sizes.values()) and report["log_x"]
    assert [p["label"] for p in points] == ["t5-nano (0.24M)", "t5-tiny (1.4M)", "t5-mini (7.4M)"]


def test_page_summary_names_a_knee_only_inside_the_measured_range():
    from ablate.analyse.dashboard import _summary

    def report(knee, inside):
        return {"cells": {"done": 3, "total": 3, "failed": 0, "missing": 0},
                "curves": {"mean": {"spearman": 0.9, "knee": knee, "knee_ci": [30.0, 80.0], "knee_inside_range": inside,
                                    "fit": {"model": "saturating"}}}}

    assert "knee at 55.7 (95% CI 30-80)" in _summary(report(55.7, True))
    outside = _summary(report(1729.0, False))
    assert "plateau beyond the range" in outside and "knee at 1.73e+03 (" not in outside
