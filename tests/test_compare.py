"""Paired comparisons, corrections, variance shares, signal-to-noise and decision reliability on
simulated data with known truths (benchmarks/decision_calibration.py does so at scale), and the
settings `ablate compare` names, read from prediction records."""

import math

import numpy as np
import pytest

from ablate.analyse.collect import CellRecord, SweepRecords
from ablate.analyse.compare import (adjust, comparison_pairs, compare_settings, decision_reliability, holm, mcnemar_p,
                                    naive_bootstrap_reliability, paired_compare, sign_flip_p, signal_to_noise,
                                    variance_shares)
from ablate.analyse.compare_sweep import compare_text, compare_two, sweep_comparisons
from ablate.analyse.instances import paired_scores, score_records, select_setting
from ablate.analyse.report_model import Comparisons, Curve, Curves, Point
from ablate.errors import AblateError
from ablate.plan import Cell, CellSettings
from ablate.spec import DataSpec, EvalSpec, TrainSpec

TASKS = np.repeat(np.arange(8), 25)  # 8 tasks x 25 instances


def _scores(rng, effect=0.0, seeds=3, seed_sd=1.0, binary=False, base=None):
    """seeds x instances: an instance difficulty shared by A and B (`base`), a seed offset, noise."""
    base = rng.normal(50, 15, len(TASKS)) if base is None else base
    y = base[None, :] + effect + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 8, (seeds, len(TASKS)))
    if binary:
        return 100.0 * (rng.random(y.shape) < np.clip(y / 100, 0, 1))
    return np.clip(y, 0, 100)


def test_mcnemar_matches_a_hand_count():
    a = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 1])
    b = np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 0])
    p, only_a, only_b = mcnemar_p(a, b)
    assert (only_a, only_b) == (5, 1)
    # Exact two-sided binomial on 6 discordant pairs, 5 vs 1: 2 * (C(6,5) + C(6,6)) / 2^6 = 14/64.
    assert p == pytest.approx(14 / 64)
    assert mcnemar_p(a, a) == (1.0, 0, 0)


def test_sign_flip_p_is_exact_in_its_extreme_and_one_without_a_difference():
    d = np.full(30, 2.0)  # every flip but the two all-same ones lowers |mean|
    assert sign_flip_p(d, rounds=2000) == pytest.approx(1 / 2001, abs=2e-3)
    assert sign_flip_p(np.zeros(10)) == 1.0


def test_a_known_difference_is_covered_and_found():
    rng = np.random.default_rng(1)
    base = rng.normal(50, 15, len(TASKS))
    a, b = _scores(rng, 6.0, seed_sd=0.3, base=base), _scores(rng, 0.0, seed_sd=0.3, base=base)
    result = paired_compare(a, b, TASKS)
    assert result.ci_low < 6.0 < result.ci_high and result.ci_low > 0
    assert result.p < 0.05 and result.prob_a_beats_b > 0.95 and result.eval_test == "sign-flip"
    assert result.n_seeds == 3 and result.n_instances == 200 and result.n_tasks == 8
    assert 0 < result.mde < 8 and "Cochran-Cox" in result.method
    reverse = paired_compare(b, a, TASKS)
    assert reverse.diff == pytest.approx(-result.diff) and reverse.prob_a_beats_b == pytest.approx(1 - result.prob_a_beats_b, abs=0.02)


def test_identical_settings_give_uniform_p_and_rarely_significant():
    rng = np.random.default_rng(2)
    ps = []
    for _ in range(60):
        base = rng.normal(50, 15, len(TASKS))
        ps.append(paired_compare(_scores(rng, base=base), _scores(rng, base=base), TASKS, rounds=200,
                                 permutations=500).p_rerun)
    ps = np.array(ps)
    assert np.mean(ps < 0.05) <= 0.12  # 60 draws: 3 expected, 7 is far in the tail
    assert 0.3 < np.median(ps) < 0.75  # roughly uniform, not piled at 0 or 1


def test_binary_scores_use_mcnemar_and_p_is_the_larger_of_the_two_tests():
    rng = np.random.default_rng(3)
    base = rng.normal(50, 15, len(TASKS))
    a, b = _scores(rng, 10.0, binary=True, base=base), _scores(rng, 0.0, binary=True, base=base)
    result = paired_compare(a, b, TASKS)
    assert result.eval_test == "mcnemar" and "McNemar" in result.method
    assert result.p == max(result.p_eval, result.p_rerun)
    expected, _, _ = mcnemar_p(a == 100, b == 100)
    assert result.p_eval == pytest.approx(expected)


def test_seed_luck_alone_is_not_called_an_effect():
    """One lucky seed offset per setting: an instance-level test sees a large effect; p does not."""
    rng = np.random.default_rng(4)
    base = rng.normal(50, 15, len(TASKS))
    a = base[None, :] + np.array([[6.0], [-5.0], [5.0]]) + rng.normal(0, 2, (3, len(TASKS)))
    b = base[None, :] + rng.normal(0, 2, (3, len(TASKS)))
    result = paired_compare(a, b, TASKS)
    assert result.p_eval < 0.01 and result.p > 0.2


def test_one_seed_has_no_rerun_test_and_says_so():
    rng = np.random.default_rng(5)
    base = rng.normal(50, 15, len(TASKS))
    result = paired_compare(_scores(rng, 3.0, seeds=1, base=base), _scores(rng, seeds=1, base=base), TASKS)
    assert result.df is None and result.p_rerun is None and result.p == result.p_eval and "one seed" in result.method


def test_intervals_of_a_difference_stay_within_its_range():
    a = np.array([[100.0, 100.0, 0.0], [0.0, 100.0, 100.0]])
    b = np.zeros((2, 3))
    result = paired_compare(a, b, ["t", "t", "t"])
    assert -100 <= result.ci_low <= result.ci_high <= 100


def test_holm_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, 0.5]
    # Holm: sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1 -> 0.04, 0.09, 0.09 (monotone), 0.5.
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    # BH: 0.5 * 4/4, 0.04 * 4/3 = 0.0533, 0.03 * 4/2 = 0.06 -> min from the top: 0.0533, 0.0533, 0.04
    assert adjust(p, "bh") == pytest.approx([0.04, 0.05333, 0.05333, 0.5], abs=1e-4)
    with pytest.raises(ValueError):
        adjust(p, "bonferroni-ish")


def test_which_comparisons():
    assert comparison_pairs(["def", "pos2", "def+pos2"], numeric=False) == [
        ("def", "pos2"), ("def", "def+pos2"), ("pos2", "def+pos2")]
    assert comparison_pairs(["def", "pos2", "def+pos2"], numeric=False, reference="def") == [
        ("pos2", "def"), ("def+pos2", "def")]
    # Numeric: adjacent (larger - smaller) and each against the largest, no repeats.
    assert comparison_pairs([256, 8, 64, 16], numeric=True) == [(16, 8), (64, 16), (256, 64), (256, 8), (256, 16)]


def test_compare_settings_corrects_across_the_family():
    rng = np.random.default_rng(6)
    base = rng.normal(50, 15, len(TASKS))
    settings = {"x": _scores(rng, 8.0, base=base), "y": _scores(rng, base=base), "z": _scores(rng, base=base)}
    found = compare_settings(settings, comparison_pairs(list(settings), numeric=False), TASKS, rounds=300,
                             permutations=1000)
    by_pair = {(f["a"], f["b"]): f for f in found}
    assert by_pair["x", "y"]["significant"] and by_pair["x", "y"]["winner"] == "x"
    assert not by_pair["y", "z"]["significant"]
    assert all(f["p_adjusted"] >= f["p"] for f in found)


def test_variance_shares_find_where_the_noise_is():
    rng = np.random.default_rng(7)
    tasks = np.repeat(np.arange(10), 40)
    task_effect = rng.normal(0, 20, 10)[tasks]
    noisy_seeds = 50 + task_effect + rng.normal(0, 6, (3, 1)) + rng.normal(0, 1, (3, 400))
    shares = variance_shares(noisy_seeds, tasks)["share"]
    assert shares["tasks"] > 0.5 and shares["instances"] < 0.1
    quiet = 50 + rng.normal(0, 15, 400)[None, :] + rng.normal(0, 0.01, (3, 1))
    assert variance_shares(quiet, tasks)["share"]["instances"] > 0.8


def test_signal_to_noise_and_reliability_follow_the_spread():
    rng = np.random.default_rng(8)
    shared = rng.normal(0, 5, 3)  # a seed's luck common to every setting: not noise for a decision
    clear = np.array([[10.0], [20.0], [30.0]]) + shared + rng.normal(0, 1, (3, 3))
    snr = signal_to_noise(clear)
    assert snr["snr"] > 5
    reliable = decision_reliability(clear)
    assert reliable["winner"] == 2 and reliable["winner_holds"] > 0.95
    same = 20 + shared + rng.normal(0, 1, (3, 3))
    unsure = decision_reliability(same)
    assert unsure["winner_holds"] < 0.75 and signal_to_noise(same)["snr"] < 3
    # The plain bootstrap is centred on the observed means: more confident than the re-run model.
    assert naive_bootstrap_reliability(same) > unsure["winner_holds"]
    assert decision_reliability(clear, higher_is_better=False)["winner"] == 0


# -- reading prediction records and naming settings ------------------------------------------------
TRAIN = TrainSpec(steps=10, batch_size=4, learning_rate=1e-3, max_source_length=64, max_target_length=8, encoding="def")


def _cell(encoding, seed):
    settings = CellSettings(data=DataSpec(source="synthetic", instances_per_task=8), model="t5-tiny",
                            train=TRAIN.model_copy(update={"encoding": encoding}), eval=EvalSpec(encodings=["def"]),
                            seed=seed, data_fingerprint="f")
    name = f"train_encoding={encoding} seed={seed}"
    return Cell(id=f"{encoding}-{seed}", name=name, axis_values={"train_encoding": encoding, "seed": seed},
                settings=settings)


def _sweep_with_predictions(rng, seeds=(0, 1, 2)):
    """Two settings; `def` answers right more often. Prediction records per cell, as logged."""
    records, predictions = [], {}
    truth = [f"answer {i}" for i in range(60)]
    for encoding, right in (("def", 0.8), ("pos2", 0.4)):
        for seed in seeds:
            record = CellRecord(_cell(encoding, seed), "done", {}, run_id=f"run-{encoding}-{seed}")
            records.append(record)
            predictions[record.run_id] = [
                {"id": f"t{i % 3}-{i}", "task": f"t{i % 3}", "references": [truth[i]],
                 "prediction": truth[i] if rng.random() < right else "something else"} for i in range(60)]
    sweep = SweepRecords("enc", "1", "parent", "sqlite:///x.db", records, {})
    return sweep, (lambda record, encoding: score_records(predictions[record.run_id]))


def test_score_records_scores_each_instance_with_the_official_metric():
    scores = score_records([{"id": "a", "task": "t", "prediction": "Yes.", "references": ["yes"]},
                            {"id": "b", "task": "t", "prediction": "no", "references": ["yes", "maybe"]}])
    assert scores.ids == ("a", "b") and list(scores.scores["exact_match"]) == [100.0, 0.0]
    assert scores.scores["rougeL"][0] == 100.0


def test_settings_are_named_by_axis_value_or_cell_and_compared():
    rng = np.random.default_rng(9)
    sweep, read = _sweep_with_predictions(rng)
    assert len(select_setting(sweep, "train_encoding=def", "A")) == 3
    assert {r.cell.id for r in select_setting(sweep, "pos2-1", "B")} == {"pos2-0", "pos2-1", "pos2-2"}
    with pytest.raises(AblateError, match="names no cell"):
        select_setting(sweep, "train_encoding=nope", "A")
    two_axes = [CellRecord(Cell(r.cell.id + "-lr", r.cell.name, {**r.cell.axis_values, "lr": lr}, r.cell.settings), "done")
                for r in sweep.cells for lr in (1, 2)]
    with pytest.raises(AblateError, match="matches 2 settings"):
        select_setting(SweepRecords("enc", "1", "p", "u", two_axes, {}), "train_encoding=def", "A")
    assert len(select_setting(SweepRecords("enc", "1", "p", "u", two_axes, {}), "train_encoding=def,lr=2", "A")) == 3
    # A block axis (train.lora) named as the run names print it (its own commas kept), as YAML or as null.
    lora = [CellRecord(Cell(r.cell.id + f"-{i}", r.cell.name, {**r.cell.axis_values, "train.lora": block},
                            r.cell.settings), "done")
            for r in sweep.cells for i, block in enumerate((None, {"r": 16, "alpha": 32}))]
    blocks = SweepRecords("enc", "1", "p", "u", lora, {})
    for selector in ("train.lora=r=16,alpha=32,train_encoding=def", "train_encoding=def, train.lora={r: 16, alpha: 32}"):
        found = select_setting(blocks, selector, "A")
        assert len(found) == 3 and all(r.cell.axis_values["train.lora"] == {"r": 16, "alpha": 32} for r in found)
    assert all(r.cell.axis_values["train.lora"] is None
               for r in select_setting(blocks, "train_encoding=pos2,train.lora=null", "B"))
    assert [r.cell.axis_values["seed"] for r in select_setting(blocks, "train_encoding=def,train.lora=null,seed=1", "A")] == [1]
    result = compare_two(sweep, "train_encoding=def", "train_encoding=pos2", read, metric="exact_match")
    assert result.diff == pytest.approx(result.mean_a - result.mean_b) and result.diff > 20
    assert result.eval_test == "mcnemar" and result.p < 0.05 and result.seeds == [0, 1, 2]
    text = compare_text(result)
    assert "A - B = +" in text and "method:" in text and "McNemar" in text
    with pytest.raises(AblateError, match="same setting"):
        compare_two(sweep, "train_encoding=def", "def-0", read)


def test_paired_scores_align_on_shared_seeds_and_instances():
    rng = np.random.default_rng(10)
    sweep, read = _sweep_with_predictions(rng)
    a = [r for r in sweep.cells if r.cell.axis_values["train_encoding"] == "def"]
    b = [r for r in sweep.cells if r.cell.axis_values["train_encoding"] == "pos2" and r.cell.settings.seed != 2]
    paired = paired_scores(a, b, "def", "exact_match", read)
    assert paired["seeds"] == [0, 1] and paired["a"].shape == (2, 60) and len(paired["tasks"]) == 60


def test_sweep_comparisons_compare_every_pair_and_report_reliability():
    rng = np.random.default_rng(11)
    sweep, read = _sweep_with_predictions(rng)
    section = sweep_comparisons(sweep, "train_encoding", ["def"], read, "exact_match", numeric=False,
                                rounds=300, permutations=1000)
    (entry,) = section.comparisons
    assert (entry.a, entry.b) == ("def", "pos2") and entry.significant and entry.winner == "def"
    (group,) = section.groups
    assert group.reliability.winner == "def" and group.reliability.winner_holds > 0.9
    assert set(group.variance) == {"def", "pos2"}
    assert math.isfinite(group.signal_to_noise.snr)


def test_the_report_gets_comparisons_and_the_heatmap_marks_the_significant_winner():
    from ablate.analyse.compare_sweep import column_winners, comparison_lines, report_comparisons, significant_marks
    from ablate.analyse.plots import matrix_figure
    from ablate.analyse.publish import report_markdown
    from ablate.analyse.report import build_report

    rng = np.random.default_rng(12)
    sweep, read = _sweep_with_predictions(rng)
    for record in sweep.cells:  # the cell's own aggregate metric, as a finished cell logged it
        record.metrics["def/cluster/nli/exact_match"] = float(read(record, "def").scores["exact_match"].mean())
    report = build_report(sweep, "exact_match")
    report = report.model_copy(update={"comparisons": report_comparisons(sweep, report, read)})
    assert report.comparisons.axis == "train_encoding" and len(report.comparisons.comparisons) == 1
    assert significant_marks(report) == {("def", "def"): 1}
    # The winner row: the best row of the column, which beats every other row of it after correction.
    (winner,) = column_winners(report).values()
    assert (winner.row, winner.beats, winner.of, winner.verdict) == ("def", 1, 1, "beats all*")
    figure = matrix_figure(report)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sum(t.endswith("*") for t in texts) == 1
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["def\nbest: def\nbeats all*"]
    assert "| **best** | def (beats all*) |" in report_markdown(report)
    lines = comparison_lines(report.comparisons)
    assert any(line.strip().startswith("* [def] def - pos2: +") for line in lines)
    assert "Paired comparisons along train_encoding" in report_markdown(report)
    from ablate import results
    from ablate.analyse.publish import comparison_metrics

    metrics = comparison_metrics(report)
    entry = report.comparisons.comparisons[0]
    assert metrics[results.comparison_key(("", "def", "def vs pos2"), "exact_match", "diff")] == entry.diff
    assert len(metrics) == 5


@pytest.mark.slow
def test_ablate_compare_on_the_smoke_sweep_rescores_the_logged_predictions(smoke_sweep):
    import json

    from ablate import results
    from tests.conftest import REPO, ablate_cli

    workdir, sweep = smoke_sweep
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    spec = str(REPO / "sweeps" / "smoke.yaml")
    result = ablate_cli("compare", spec, "instances_per_task=16", "instances_per_task=8", "--json", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    found = json.loads(result.stdout)
    assert found["seeds"] == [0, 1] and found["n_instances"] > 0 and found["eval_test"] == "sign-flip"
    assert found["ci_low"] <= found["diff"] <= found["ci_high"] and 0 <= found["p"] <= 1
    # The per-instance scores, re-scored from the predictions artifacts, average to the cells' logged score.
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id],
                              f"tags.`{results.ROLE}` = '{results.ROLE_CELL}'")
    logged = [r.data.metrics[results.MetricKey("def+pos2", "rougeL").key()] for r in runs
              if json.loads(r.data.tags[results.AXIS_PREFIX + "instances_per_task"]) == 16]
    assert found["mean_a"] == pytest.approx(sum(logged) / len(logged), abs=1e-3)
    text = ablate_cli("compare", spec, "instances_per_task=16", "instances_per_task=8", cwd=workdir)
    assert "A - B = " in text.stdout and "method:" in text.stdout
    bad = ablate_cli("compare", spec, "instances_per_task=3", "instances_per_task=8", cwd=workdir)
    assert bad.returncode == 2 and "names no cell" in bad.stderr and "Traceback" not in bad.stderr


def test_a_curve_gets_a_bracket_between_adjacent_points_that_differ_significantly():
    from ablate.analyse.compare_sweep import adjacent_significant
    from ablate.analyse.plots import curve_figure

    points = [Point(x=x, n=2, mean=m, ci_low=m - 1, ci_high=m + 1, values=[m - 1, m + 1], label=str(x))
              for x, m in ((8.0, 10.0), (16.0, 20.0), (32.0, 21.0))]
    report = _report(Curves(axis="instances_per_task", x_label="n", encoding="def", x_is_count=True, log_x=True,
                            lines={"mean": Curve(points=points)}),
                     comparisons=Comparisons(axis="instances_per_task", metric="rougeL", correction="holm", groups=[],
                                             scores="", method="m", comparisons=[
                                                 _comparison("16", "8", True), _comparison("32", "16", False),
                                                 _comparison("32", "8", True)]))
    assert adjacent_significant(report) == [(8.0, 16.0)]  # 32 vs 8 is significant but not adjacent
    figure = curve_figure(report)
    assert [t.get_text() for t in figure.axes[0].texts] == ["*"]


def test_a_clusters_curve_compares_adjacent_counts_and_each_against_the_largest():
    from ablate.analyse.compare_sweep import report_comparisons
    from ablate.analyse.instances import InstanceScores

    rng = np.random.default_rng(13)
    orders = [["a"], ["a", "b"], ["a", "b", "c"]]
    records, scores = [], {}
    for clusters in orders:
        for seed in (0, 1, 2):
            cell = _cell("def", seed)
            cell = Cell(f"{len(clusters)}-{seed}", f"n={len(clusters)} seed={seed}",
                        {"train_clusters": clusters, "seed": seed}, cell.settings)
            records.append(CellRecord(cell, "done", {}, run_id=cell.id))
            values = np.clip(20 + 10 * len(clusters) + rng.normal(0, 5, 90), 0, 100)
            scores[cell.id] = InstanceScores(tuple(f"i{i}" for i in range(90)), tuple(f"t{i % 3}" for i in range(90)),
                                             {"rougeL": values})
    sweep = SweepRecords("clusters", "1", "parent", "u", records, {})
    report = _report(Curves(axis="train_clusters", x_label="clusters", encoding="def", x_is_count=True, log_x=False,
                            lines={}))
    section = report_comparisons(sweep, report, lambda record, encoding: scores[record.run_id])
    assert [(e.a, e.b) for e in section.comparisons] == [("a+b", "a"), ("a+b+c", "a+b"), ("a+b+c", "a")]
    assert all(e.significant and e.winner == e.a for e in section.comparisons)
    assert section.groups[0].reliability.winner == "a+b+c"


def _report(curves, comparisons=None):
    """A report of one curve figure, as build_report makes it (for figure and comparison tests)."""
    from ablate.analyse.report_model import CellCounts, Report

    return Report(experiment="x", experiment_id="1", metric="rougeL", sweep="x", parent_run_id="p",
                  cells=CellCounts(total=0, done=0, failed=0, missing=0, not_done=[]), aggregate="clusters",
                  baselines={}, curves=curves, comparisons=comparisons)


def _comparison(a, b, significant):
    from ablate.analyse.report_model import Comparison

    return Comparison(group="", encoding="def", a=a, b=b, diff=1.0, ci_low=0.5, ci_high=1.5, se=0.2, df=None, p=0.01,
                      p_eval=0.01, p_rerun=None, eval_test="sign-flip", prob_a_beats_b=0.99, mde=None, n_seeds=1,
                      n_instances=10, n_tasks=2, method="m", p_adjusted=0.01 if significant else 0.5,
                      correction="holm", significant=significant, winner=a if significant else None)


def test_where_lower_is_better_the_winner_is_the_lower_setting():
    rng = np.random.default_rng(14)
    sweep, read = _sweep_with_predictions(rng)
    for record in sweep.cells:  # the same scores, read as a metric where lower is better
        scores = read(record, "def")
        record.metrics["def/cluster/nli/hallucination_rate"] = float(scores.scores["exact_match"].mean())

    def as_hallucination(record, encoding):
        scores = read(record, encoding)
        return type(scores)(scores.ids, scores.tasks, {"hallucination_rate": scores.scores["exact_match"]})

    section = sweep_comparisons(sweep, "train_encoding", ["def"], as_hallucination, "hallucination_rate",
                                numeric=False, rounds=300, permutations=1000)
    (entry,) = section.comparisons
    assert entry.diff > 0 and entry.significant and entry.winner == "pos2"  # def is higher: worse here
    assert section.groups[0].reliability.winner == "pos2"
