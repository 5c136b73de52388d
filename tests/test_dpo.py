"""The dpo stage and the preference evaluators, run in a cell directly (no Ray) against a real
MLflow SQLite store: a tiny llama fine-tuned, then preference-tuned with TRL's DPOTrainer."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate import results
from ablate.cell import STAGE_KEY, CellPlace, run_cell
from tests.conftest import cell_tracker, planned_cells

DPO = {"kind": "dpo", "steps": 4, "pairs": 24, "batch_size": 4, "learning_rate": 1e-3, "beta": 0.1}
SPEC = {
    "name": "dpo", "data": {"source": "synthetic", "num_train_tasks": 6, "instances_per_task": 8},
    "model": "llama-nano",
    "train": {"steps": 4, "batch_size": 8, "learning_rate": 1e-3, "max_source_length": 64, "max_target_length": 8,
              "encoding": "def"},
    "eval": {"instances_per_task": 6, "max_new_tokens": 4, "batch_size": 32,
             "evaluators": ["generate", "preference", "abstention"]},
    "stages": ["sft", DPO],
    "seeds": [0],
}


def _cell(tmp_path: Path, spec: dict):
    return planned_cells(tmp_path, spec)


def _tracker(tmp_path: Path, cell):
    return cell_tracker(tmp_path, cell, "dpo")


def _series(store, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in store.client.get_metric_history(run_id, key))


def test_a_cell_with_sft_then_dpo_logs_the_dpo_series_and_resumes_from_a_dpo_checkpoint(tmp_path):
    spec = {**SPEC, "train": {**SPEC["train"], "checkpoint_every": 2}}
    cell = _cell(tmp_path, spec)[0]
    tracker, store = _tracker(tmp_path, cell)
    saved: list[tuple[int, dict]] = []
    headline = run_cell(cell, CellPlace(cache_dir=tmp_path / "cache"), tracker,
                        save_checkpoint=lambda step, make_state: saved.append((step, make_state())))
    tracker.finish()
    run = store.client.get_run(tracker.run_id)
    metrics = run.data.metrics
    # Every declared metric of the three evaluators, overall and per task.
    assert {"rougeL", "pref_acc", "pref_margin"} <= set(headline)
    parsed = {(p.metric, p.group) for p in map(results.parse_metric_key, metrics) if p}
    assert {("pref_acc", None), ("pref_acc", "task"), ("pref_margin", "cluster")} <= parsed
    assert 0.0 <= metrics["def/pref_acc"] <= 100.0
    # TRL's loss, reward margin and accuracy at every DPO step; the implicit reward on held-out pairs.
    for key in (results.DPO_LOSS, results.DPO_REWARD_MARGIN, results.DPO_REWARD_ACCURACY):
        assert [step for step, _ in _series(store, run.info.run_id, key)] == [1, 2, 3, 4]
    assert 0.0 <= metrics[results.DPO_HELD_OUT_ACCURACY] <= 100.0
    assert metrics[results.NUM_PREFERENCE_PAIRS] == 24
    assert metrics[results.TRAIN_STEPS] == 4 + 4
    # The DPO stage's checkpoints count on from the SFT's steps, so they are the more advanced ones.
    stages = [(step, state[STAGE_KEY]) for step, state in saved]
    assert stages == [(2, 0), (4 + 2, 1)]

    # A cell killed after the DPO checkpoint resumes there: SFT is not run again, and the result
    # is that of the uninterrupted cell.
    again, _ = _tracker(tmp_path, cell)
    resumed = run_cell(cell, CellPlace(cache_dir=tmp_path / "cache"), again, resume_state=saved[-1][1])
    again.finish()
    assert resumed["pref_acc"] == headline["pref_acc"]
    assert resumed["pref_margin"] == pytest.approx(headline["pref_margin"], abs=1e-3)
    assert _series(store, again.run_id, results.TRAIN_LOSS) == []  # the SFT stage was skipped
    first, second = (_series(store, r, results.DPO_LOSS) for r in (run.info.run_id, again.run_id))
    assert [s for s, _ in second] == [1, 2, 3, 4]
    assert [v for _, v in second] == pytest.approx([v for _, v in first], abs=1e-4)


def test_dpo_changes_every_trained_parameter_and_leaves_the_model_as_it_found_it(tmp_path):
    import torch

    from ablate.cell import build_cell_model
    from ablate.data.cell_data import open_cell_data
    from ablate.stages import dpo, sft
    from ablate.stages.base import StageInput

    cell = _cell(tmp_path, SPEC)[0]
    tracker, _ = _tracker(tmp_path, cell)
    place = CellPlace(cache_dir=tmp_path / "cache")
    data = open_cell_data(cell.settings, place.cache_dir)
    built = build_cell_model(cell.settings, data.library.root, place, tracker)

    def given():
        return StageInput(built.model, built.tokenizer, built.tokenizer_id, built.truncation, cell.settings, data,
                          tracker, place.cache_dir, "cpu", None, None)

    sft.run(given(), cell.settings.stages[0])
    before = {n: p.detach().clone() for n, p in built.model.named_parameters()}
    output = dpo.run(given(), cell.settings.stages[1])
    after = dict(built.model.named_parameters())
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n])]
    assert unchanged == [] and all(torch.isfinite(p).all() for p in after.values())
    assert output.train.steps == 4 and len(output.train.loss_history) == 4
    assert "forward" not in vars(built.model)  # TRL's fused log-prob head is taken off again
    assert built.model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape[-1] == built.model.config.vocab_size


def test_preference_pairs_of_the_synthetic_suite_reject_a_wrong_answer_and_a_hallucinated_member(tmp_path):
    from ablate.data.cell_data import open_cell_data
    from ablate.data.preference import is_abstention_question, pairs_from_tasks
    from ablate.data.synthetic import CLASS_OF

    cell = _cell(tmp_path, SPEC)[0]
    data = open_cell_data(cell.settings, tmp_path / "cache")
    names = [n for n in data.library.names() if "_first_" in n or "_filter_" in n]
    pairs = pairs_from_tasks(data.library, names, 400, "def", None, seed=0)
    assert len(pairs) == 400 and all(p.prompt.startswith("Definition: ") for p in pairs)
    instances = {i.id: i for n in names for i in data.library.get(n).instances}
    nones = [p for p in pairs if is_abstention_question(instances[p.id].references)]
    assert nones, "the suite has questions whose truthful answer is none"
    for pair in pairs:
        instance = instances[pair.id]
        assert pair.chosen in instance.references and pair.rejected not in instance.references
    for pair in nones:  # the rejected answer names members of the class, which the list does not hold
        held = set(instances[pair.id].input.split())
        assert all(w in CLASS_OF and w not in held for w in pair.rejected.split())


def test_the_abstention_judge_tells_abstaining_from_hallucinating():
    from ablate.evaluators.abstention import judge

    assert judge("none", "cat red tea") == {"abstain_rate": 1.0, "hallucination_rate": 0.0}
    assert judge("pear", "cat red tea") == {"abstain_rate": 0.0, "hallucination_rate": 1.0}
    assert judge("red", "cat red tea") == {"abstain_rate": 0.0, "hallucination_rate": 0.0}


def test_stage_lists_and_stage_settings_are_axes(tmp_path):
    from ablate.errors import AblateError

    cells = _cell(tmp_path, {**SPEC, "axes": {"stages": [["sft"], ["sft", "dpo"]]}})
    assert [[s.kind for s in c.settings.stages] for c in cells] == [["sft"], ["sft", "dpo"]]
    assert len({c.id for c in cells}) == 2
    cells = _cell(tmp_path, {**SPEC, "axes": {"stages.dpo.beta": [0.1, 0.5], "stages.dpo.pairs": [8, 16],
                                              "stages.dpo.sft_mix": [0.0, 1.0]}})
    assert len({c.id for c in cells}) == 8
    assert {(c.settings.stages[1].beta, c.settings.stages[1].pairs, c.settings.stages[1].sft_mix) for c in cells} \
        == {(b, p, m) for b in (0.1, 0.5) for p in (8, 16) for m in (0.0, 1.0)}
    assert cells[0].name == "beta=0.1 pairs=8 sft_mix=0.0 seed=0"
    for axes, wanted in (({"stages.dpo.betta": [1, 2]}, "Did you mean 'beta'?"),
                         ({"stages.rlhf.beta": [1, 2]}, "stages.<kind>.<field>"),
                         ({"stages": [["sft"], ["sft", "dpo"]], "stages.dpo.beta": [1, 2]}, "cannot be crossed")):
        with pytest.raises(AblateError, match=wanted):
            _cell(tmp_path, {**SPEC, "axes": axes})


def _validate(tmp_path: Path, spec: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run([sys.executable, "-m", "ablate.cli", "validate", str(path)], check=False, capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)


def test_an_encoder_decoder_model_with_a_dpo_stage_is_refused_before_anything_starts(tmp_path):
    done = _validate(tmp_path, {**SPEC, "model": "t5-nano"})
    assert done.returncode == 2, done.stderr
    assert "dpo needs a decoder-only model" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ablate_runs").exists()


def test_without_trl_a_dpo_spec_is_refused_with_the_install_command(tmp_path, monkeypatch):
    from ablate.validate import check_cells

    cells = _cell(tmp_path, SPEC)
    assert check_cells(cells, tmp_path / "cache").errors == []
    monkeypatch.setitem(sys.modules, "trl", None)  # `import trl` raises ImportError, as when it is not installed
    errors = check_cells(cells, tmp_path / "cache").errors
    assert len(errors) == 1 and "pip install -e '.[preference]'" in errors[0]


def test_a_preference_file_is_checked_before_anything_starts(tmp_path):
    from ablate.errors import AblateError
    from ablate.validate import check_cells

    with pytest.raises(AblateError, match="does not exist"):
        _cell(tmp_path, {**SPEC, "stages": ["sft", {**DPO, "source": "missing.jsonl"}]})
    rows = [{"prompt": "Definition: say yes. Input: x. Output:", "chosen": "yes", "rejected": "no"}] * 3
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"prompt\": 1}\n")
    cells = _cell(tmp_path, {**SPEC, "stages": ["sft", {**DPO, "source": "pairs.jsonl", "pairs": 2}]})
    assert Path(cells[0].settings.stages[1].source).is_absolute()
    errors = check_cells(cells, tmp_path / "cache").errors
    assert len(errors) == 1 and "line 4 is not a JSON object" in errors[0]


def test_a_report_over_stage_lists_draws_them_in_plan_order_and_leaves_out_baselines_without_the_metric():
    from ablate.analyse.collect import CellRecord, SweepRecords
    from ablate.analyse.report import build_report
    from ablate.baselines import BaselineScores
    from ablate.plan import Cell, CellSettings
    from ablate.spec import DataSpec, EvalSpec, TrainSpec

    train = TrainSpec(steps=4, batch_size=4, learning_rate=1e-3, max_source_length=64, max_target_length=8,
                      encoding="def")
    stage_lists = [["sft"], ["sft", {"kind": "dpo", "beta": 0.5}]]
    records = []
    for position, stages in enumerate(stage_lists):
        for seed in (0, 1):
            settings = CellSettings(data=DataSpec(source="synthetic", instances_per_task=8), model="llama-nano",
                                    train=train, eval=EvalSpec(), stages=stages, seed=seed, data_fingerprint="f")
            values = {"stages": stages, "seed": seed}
            records.append(CellRecord(Cell(f"{position}-{seed}", f"{position}-{seed}", values, settings), "done",
                                      {"def/cluster/nli/pref_acc": 50.0 + 10 * position + seed}))
    baselines = {"copy_demo": BaselineScores(overall={"rougeL": 31.0}, per_cluster={"nli": {"rougeL": 40.0}})}
    report = build_report(SweepRecords("p", "1", "parent", "sqlite:///x.db", records, baselines), "pref_acc")
    points = report.curves.lines["nli"].points
    assert [(p.x, p.label, p.mean) for p in points] == [(0.0, "sft", 50.5), (1.0, "sft+dpo(beta=0.5)", 60.5)]
    assert report.baselines == {}


def test_stage_lists_scored_by_several_evaluators_draw_instructgpt_grouped_bars():
    """One group per metric (each evaluator's headline and shares), one bar per stage list, with
    intervals; the paired comparisons run along the stage lists."""
    from ablate.analyse.collect import CellRecord, SweepRecords
    from ablate.analyse.plots import report_figures
    from ablate.analyse.publish import report_markdown
    from ablate.analyse.report import build_report
    from ablate.plan import Cell, CellSettings
    from ablate.spec import DataSpec, EvalSpec, TrainSpec

    train = TrainSpec(steps=4, batch_size=4, learning_rate=1e-3, max_source_length=64, max_target_length=8,
                      encoding="def")
    stage_lists = [["sft"], ["sft", {"kind": "dpo", "beta": 0.1}], ["sft", {"kind": "dpo", "beta": 0.1, "sft_mix": 1.0}]]
    evaluators = EvalSpec(evaluators=["generate", "preference", "abstention"])
    records = []
    for position, stages in enumerate(stage_lists):
        for seed in (0, 1, 2):
            settings = CellSettings(data=DataSpec(source="synthetic", instances_per_task=8), model="llama-nano",
                                    train=train, eval=evaluators, stages=stages, seed=seed, data_fingerprint="f")
            metrics = {"def/cluster/nli/rougeL": 40.0 - 2 * position + seed, "def/cluster/nli/pref_acc": 60.0 + 10 * position + seed,
                       "def/cluster/nli/abstain_rate": 20.0 * position + seed, "def/cluster/nli/hallucination_rate": 50.0 - 10 * position}
            records.append(CellRecord(Cell(f"{position}-{seed}", f"{position}-{seed}", {"stages": stages, "seed": seed},
                                           settings), "done", metrics))
    report = build_report(SweepRecords("p", "1", "parent", "sqlite:///x.db", records, {}), "rougeL")
    bars = report.bars
    assert report.curves is None and report.matrix is None and bars.group_label == "metric" and bars.metric is None
    # rougeL first (the report's metric), then each evaluator's shares that some cell scored, in evaluator order.
    assert bars.groups == ["rougeL", "pref_acc", "abstain_rate", "hallucination_rate"]
    assert list(bars.series) == ["sft", "sft+dpo(beta=0.1)", "sft+dpo(beta=0.1,sft_mix=1.0)"]
    assert bars.series["sft+dpo(beta=0.1)"]["pref_acc"].mean == 71.0
    assert bars.series["sft"]["rougeL"].n == 3 and bars.series["sft"]["rougeL"].ci_low < 41.0
    assert bars.series["sft+dpo(beta=0.1,sft_mix=1.0)"]["hallucination_rate"].mean == 30.0
    figure, html = report_figures(report)
    assert len(figure.axes[0].patches) == 3 * 4 and "bar" in html
    assert figure.axes[0].get_xticklabels()[-1].get_text() == "hallucination_rate\n(lower is better)"
    assert "| setting \\ metric | rougeL | pref_acc |" in report_markdown(report)


def test_held_out_pairs_are_scored_again_from_the_preference_records():
    """Paired comparisons of pref_acc read each cell's predictions/preference/<enc>.jsonl."""
    from ablate.analyse.instances import parse_predictions, score_records

    text = "\n".join(json.dumps(r) for r in (
        {"id": "t-0", "task": "t", "chosen": "two", "rejected": "one", "logp_chosen": -1.0, "logp_rejected": -3.0},
        {"id": "t-1", "task": "t", "chosen": "none", "rejected": "cat", "logp_chosen": -4.0, "logp_rejected": -2.5}))
    scores = score_records(parse_predictions(text, "x", frozenset({"logp_chosen", "logp_rejected"})), "preference")
    assert scores.ids == ("t-0", "t-1") and list(scores.scores["pref_acc"]) == [100.0, 0.0]
    assert list(scores.scores["pref_margin"]) == [2.0, -1.5]
