"""Every axis form the docs' spec page (docs/concepts/spec.md) documents makes a report: the cells are planned from
a real spec (so their axis values are what a sweep stores), their results are synthetic, and the
report, its figures, its text digest, its markdown and its curve metrics are all made."""

import pytest

from ablate.analyse.collect import CellRecord, SweepRecords
from ablate.analyse.plots import report_figures
from ablate.analyse.publish import curve_points, print_report, report_markdown
from ablate.analyse.report import build_report
from ablate.plan import expand_grid
from ablate.spec import SweepSpec

CLUSTERS = ["program_execution", "translation", "extraction"]


def _spec(axes, seeds=(0, 1), test_encodings=None, lora=None):
    raw = {"name": "axes", "data": {"source": "synthetic", "instances_per_task": 8, "held_out_clusters": ["nli"]},
           "model": "t5-nano",
           "train": {"steps": 10, "batch_size": 4, "learning_rate": 1e-3, "max_source_length": 64,
                     "max_target_length": 8, "encoding": "def"},
           "eval": {"encodings": test_encodings}, "seeds": list(seeds), "axes": axes}
    raw["train"]["lora"] = lora
    return SweepSpec.model_validate(raw)


def _records(spec):
    """One finished run per planned cell, its score rising with the cell's position in the plan."""
    records = []
    for position, cell in enumerate(expand_grid(spec, "fingerprint")):
        metrics = {"num_parameters": {"t5-nano": 2.5e5, "t5-tiny": 1.4e6}.get(cell.settings.model, 1e6)}
        for encoding in cell.settings.test_encodings:
            nli = 20.0 + 3 * position + cell.settings.seed + (5 if "pos" in encoding else 0)
            metrics.update({f"{encoding.replace('+', '-')}/cluster/nli/rougeL": nli,
                            f"{encoding.replace('+', '-')}/rougeL": nli})
        records.append(CellRecord(cell, "done", metrics, run_id=f"run{position}"))
    return SweepRecords("axes", "1", "parent", "sqlite:///x.db", records, {})


def _made(spec, capsys):
    report = build_report(_records(spec), "rougeL")
    figure, html = report_figures(report)
    assert figure.axes and html
    print_report(report)
    printed = capsys.readouterr().out
    markdown = report_markdown(report)
    assert "Report 'axes'" in printed and markdown.startswith("### axes")
    return report, printed, curve_points(report)


def _curve(report):
    return report.curves.lines["mean"].points


def test_cumulative_clusters_from_none(capsys):
    report, _, points = _made(_spec({"train_clusters": {"cumulative": CLUSTERS, "from_none": True}}), capsys)
    assert [p.x for p in _curve(report)] == [1.0, 2.0, 3.0] and report.curves.lines["mean"].untuned.n == 2
    assert [step for step, _ in points["curve/mean/rougeL"]] == [1, 2, 3]


def test_clusters_as_a_list_of_lists(capsys):
    report, _, _ = _made(_spec({"train_clusters": [["translation"], ["translation", "extraction"]]}), capsys)
    assert [p.label for p in _curve(report)] == ["1 (+translation)", "2 (+extraction)"]


def test_clusters_added_in_a_random_order_per_seed(capsys):
    report, _, _ = _made(_spec({"train_clusters": {"cumulative": CLUSTERS, "order": "random"}}), capsys)
    assert [p.x for p in _curve(report)] == [1.0, 2.0, 3.0] and all(p.n == 2 for p in _curve(report))


def test_number_of_training_tasks_from_zero(capsys):
    report, _, _ = _made(_spec({"num_train_tasks": [0, 1, 2, 4]}), capsys)
    assert report.curves.log_x and [p.x for p in _curve(report)] == [1.0, 2.0, 4.0]
    assert report.curves.lines["mean"].untuned.n == 2


def test_instances_per_task(capsys):
    report, _, _ = _made(_spec({"instances_per_task": [8, 16, 32]}), capsys)
    assert [p.x for p in _curve(report)] == [8.0, 16.0, 32.0]


def test_model_size(capsys):
    report, _, _ = _made(_spec({"model": ["t5-nano", "t5-tiny"]}), capsys)
    assert [p.x for p in _curve(report)] == [2.5e5, 1.4e6]


def test_training_by_testing_encoding(capsys):
    report, _, _ = _made(_spec({"train_encoding": ["def", "pos2"], "test_encoding": ["def", "pos2"]}), capsys)
    assert report.matrix.rows == ["def", "pos2"] and report.matrix.columns == ["def", "pos2"]


def test_test_encodings_alone(capsys):
    report, _, _ = _made(_spec({"test_encoding": ["def", "def+pos2"]}), capsys)
    matrix = report.matrix
    assert matrix.rows == ["def"] and matrix.columns == ["def", "def+pos2"]
    assert matrix.cell("def", "def+pos2").mean == matrix.cell("def", "def").mean + 5


def test_a_scalar_setting_by_dotted_path(capsys):
    report, _, points = _made(_spec({"train.learning_rate": [1e-3, 3e-4]}), capsys)
    assert [p.x for p in _curve(report)] == [3e-4, 1e-3] and not report.curves.x_is_count
    assert [step for step, _ in points["curve/mean/rougeL"]] == [0, 1], "stepped by position"


def test_a_lora_block_alone(capsys):
    """The crash of issue 24: `train.lora: [null, {r: 16, alpha: 32}]` as the only axis."""
    report, printed, _ = _made(_spec({"train.lora": [None, {"r": 16, "alpha": 32}]}), capsys)
    assert [p.x for p in _curve(report)] == [0.0, 1.0]
    labels = [p.label for p in _curve(report)]
    assert labels[0] == "null" and labels[1].startswith("r=16,alpha=32")
    assert "null:" in printed


def test_a_lora_rank(capsys):
    report, _, _ = _made(_spec({"train.lora.r": [4, 8]}, lora={"r": 4, "alpha": 8}), capsys)
    assert [p.x for p in _curve(report)] == [4.0, 8.0]


def test_model_by_lora_heatmap(capsys):
    report, _, _ = _made(_spec({"model": ["t5-nano", "t5-tiny"], "train.lora": [None, {"r": 8, "alpha": 16}]}),
                         capsys)
    assert report.matrix.rows == ["t5-nano", "t5-tiny"] and len(report.matrix.columns) == 2


def test_untuned_against_tuned_zero_and_few_shot(capsys):
    report, _, _ = _made(_spec({"train.steps": [0, 10]}, test_encodings=["def", "def+pos2"]), capsys)
    assert set(report.bars.series) == {"untuned, zero-shot (def)", "untuned, few-shot (def+pos2)",
                                             "instruction-tuned, zero-shot (def)"}


def test_no_axis_is_one_point_and_says_so(capsys):
    _, printed, points = _made(_spec({}, seeds=(0,)), capsys)
    line = next(text for text in printed.splitlines() if text.strip().startswith("mean"))
    assert line.split() == ["mean", "20.0", "(n=1,", "no", "interval)"], line
    assert "|" not in line and "0.0:" not in line
    assert set(points) == {"curve/mean/rougeL", "curve/nli/rougeL"}, "one seed: no interval bounds are logged"


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_interval_bounds_are_logged_only_where_the_report_has_them(seeds, capsys):
    report, _, points = _made(_spec({"instances_per_task": [8, 16]}, seeds=seeds), capsys)
    has_interval = _curve(report)[0].ci_low is not None
    assert has_interval == (len(seeds) > 1)
    assert ("curve/mean/rougeL_ci_low" in points) == has_interval
    assert ("curve/mean/rougeL_ci_high" in points) == has_interval
    if has_interval:
        assert all(low < mean for (_, low), (_, mean) in zip(points["curve/mean/rougeL_ci_low"],
                                                             points["curve/mean/rougeL"]))
