"""Folded steps (ablate/fold.py): one training scored at several numbers of steps gives each
cell exactly the scores of its own training, and is refused where it could not."""

import functools
import json
from pathlib import Path

import pytest

from ablate import results
from ablate.cell import CellPlace, FoldPoint, run_cell
from ablate.fold import FOLDED, fold_groups
from ablate.track.cell_run import CellTracker
from ablate.track.store import Store
from tests.conftest import ablate_cli, planned_cells

SPEC = {
    "name": "fold", "data": {"source": "synthetic", "num_train_tasks": 4, "instances_per_task": 8},
    "model": "t5-nano",
    "train": {"steps": 6, "batch_size": 8, "learning_rate": 1e-3, "max_source_length": 96, "max_target_length": 8,
              "encoding": "def", "schedule": "constant_with_warmup", "warmup_steps": 2, "log_every": 2},
    "eval": {"instances_per_task": 4, "max_new_tokens": 4, "evaluators": ["generate", "rank"]},
    "seeds": [0],
    "axes": {"train.steps": {"values": [3, 6], "fold": True}},
}


def _with(**train) -> dict:
    return {**SPEC, "train": {**SPEC["train"], **train}}


def test_cells_that_differ_only_in_steps_share_one_training_led_by_the_longest(tmp_path):
    spec = {**SPEC, "seeds": [0, 1], "axes": {"train.steps": [6, 0, 3, 12], "train.learning_rate": [1e-3, 1e-2]}}
    cells = planned_cells(tmp_path, spec)
    groups = fold_groups(cells)
    # Per seed and learning rate: 12 steps trained, 3 and 6 on the way; per seed the untuned cell
    # alone (the same cell at every learning rate).
    assert len(groups) == 2 * 2 + 2
    trained = [g for g in groups if g.points]
    assert len(trained) == 4 and all(g.lead.settings.train.steps == 12 for g in trained)
    assert all([p.settings.train.steps for p in g.points] == [3, 6] for g in trained)
    assert all({p.settings.seed for p in g.cells} == {g.lead.settings.seed} for g in trained)
    assert all(not g.points and g.lead.settings.train.steps == 0 for g in groups if g not in trained)
    assert sorted(c.id for g in groups for c in g.cells) == sorted({c.id for c in cells}), "each cell once"
    # A decaying schedule's first steps depend on the total: nothing folds.
    linear = planned_cells(tmp_path, {**spec, "train": {**SPEC["train"], "schedule": "linear"}})
    assert all(not g.points for g in fold_groups(linear))
    # A heuristic baseline trains nothing, so nothing pauses to score it: each of its cells alone.
    baseline = planned_cells(tmp_path, {**SPEC, "model": "copy_input"})
    assert len(baseline) == 2 and all(not g.points for g in fold_groups(baseline))


@pytest.mark.parametrize("change, field, message", [
    ({"train": {**SPEC["train"], "schedule": "cosine"}}, "axes.train.steps", "needs a schedule whose first steps"),
    ({"stages": ["sft", "dpo"]}, "axes.train.steps", "must have one stage, sft"),
    ({"axes": {"train.learning_rate": {"values": [1e-3], "fold": True}}}, "axes.train.learning_rate",
     "only train.steps can be folded"),
    ({"axes": {"train.steps": {"values": [3, 6], "fold": "yes"}}}, "axes.train.steps",
     "fold: Input should be a valid boolean"),
])
def test_a_fold_that_could_change_the_scores_is_refused_naming_the_field(tmp_path, change, field, message):
    spec = tmp_path / "spec.yaml"
    import yaml

    spec.write_text(yaml.safe_dump({**SPEC, **change}))
    result = ablate_cli("validate", str(spec), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and f"- {field}: " in result.stderr


def _store(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = Store(uri)
    return uri, store, store.ensure_experiment("fold")


def _start(uri: str, experiment_id: str, cell) -> CellTracker:
    return CellTracker.start(uri, experiment_id, "parent", cell_id=cell.id, name=cell.name, sweep="fold",
                             axis_values=cell.axis_values, settings=cell.settings.model_dump(mode="json"),
                             data_fingerprint=cell.settings.data_fingerprint)


def _model_metrics(store, run_id: str) -> dict[str, float]:
    metrics = store.client.get_run(run_id).data.metrics
    return {k: v for k, v in metrics.items() if not results.is_machine_measure(k) and not k.startswith("axis/")}


def _predictions(store, run_id: str, folder: Path) -> str:
    path = Path(store.client.download_artifacts(run_id, results.predictions_artifact("def"), str(folder)))
    return path.read_text()


@pytest.mark.parametrize("model", ["t5-nano", "llama-nano"])
def test_a_folded_cell_scores_exactly_what_its_own_training_scores(tmp_path, model):
    """3 steps scored on the way to 6 (with dropout, warm-up, both evaluators) against 3 steps
    trained alone; and the 6-step training is not changed by the pause."""
    short, long = sorted(planned_cells(tmp_path, {**SPEC, "model": model}), key=lambda c: c.settings.train.steps)
    uri, store, experiment_id = _store(tmp_path)
    place = CellPlace(cache_dir=tmp_path / "cache")
    folded_runs = []

    def start_point(cell):
        tracker = _start(uri, experiment_id, cell)
        folded_runs.append(tracker)
        return tracker

    lead = _start(uri, experiment_id, long)
    run_cell(long, place, lead, fold_points=(FoldPoint(short, functools.partial(start_point, short)),))
    lead.finish()
    alone = {}
    for cell in (short, long):
        tracker = _start(uri, experiment_id, cell)
        run_cell(cell, place, tracker)
        tracker.finish()
        alone[cell.settings.train.steps] = tracker.run_id

    [point_tracker] = folded_runs
    assert point_tracker.closed_as == "FINISHED", "what a failed trial counts as scored (ablate.trial.FOLDED_SCORED)"
    point_run = point_tracker.run_id
    point = store.client.get_run(point_run)
    assert point.info.status == "FINISHED" and point.data.tags[results.CELL_ID] == short.id
    assert _model_metrics(store, point_run) == _model_metrics(store, alone[3])
    assert _predictions(store, point_run, tmp_path / "a") == _predictions(store, alone[3], tmp_path / "b")
    history = [(m.step, m.value) for m in store.client.get_metric_history(point_run, results.TRAIN_LOSS)]
    assert history == [(m.step, m.value) for m in store.client.get_metric_history(alone[3], results.TRAIN_LOSS)]
    assert [s for s, _ in history] == [2, 3], "the loss curve a 3-step training logs (every 2 steps, then its last)"
    assert _model_metrics(store, lead.run_id) == _model_metrics(store, alone[6])
    assert _model_metrics(store, point_run)["train_steps"] == 3


@pytest.mark.slow
def test_a_folded_sweep_trains_once_per_seed_logs_every_cell_and_caches_them(tmp_path):
    import yaml

    spec = {**SPEC, "seeds": [0, 1], "axes": {"train.steps": {"values": [2, 4, 6], "fold": True}},
            "resources": {"max_concurrent": 2}}
    (tmp_path / "fold.yaml").write_text(yaml.safe_dump(spec))
    first = ablate_cli("sweep", "fold.yaml", "--yes", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "and 2 folded cell(s)" in first.stdout and "[6/6]" in first.stdout
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = store.client.get_experiment_by_name("fold").experiment_id
    runs = store.cell_runs(experiment_id)
    assert len(runs) == 6 and all(len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values())
    trained_by = {r[0].data.tags.get(results.FOLDED_INTO) for r in runs.values()}
    assert len(trained_by - {None}) == 2, "one training per seed, each scoring two cells on the way"
    steps = {r[0].data.tags[results.CELL_ID]: r[0].data.metrics["train_steps"] for r in runs.values()}
    assert sorted(steps.values()) == [2, 2, 4, 4, 6, 6]
    report = json.loads((tmp_path / "ablate_runs" / "fold" / "report" / "report.json").read_text())
    assert report["cells"]["done"] == 6
    second = ablate_cli("sweep", "fold.yaml", "--yes", cwd=tmp_path)
    assert second.returncode == 0 and "6 cached, 0 to run" in second.stdout


def test_a_resumed_training_skips_the_cells_it_scored_and_restarts_for_one_it_passed_unscored(tmp_path):
    """Tune retrying a trial from its step-4 checkpoint scored the 2- and 4-step cells before
    writing it; a re-run after kill -9 lists only cells not scored yet, so a checkpoint past one
    of them is not used (the cell could not be scored from it)."""
    from ablate.trial import TrialContext, _fold_points, resume_for_folds

    cells = sorted(planned_cells(tmp_path, {**SPEC, "axes": {"train.steps": {"values": [2, 4, 6, 8], "fold": True}}}),
                   key=lambda c: c.settings.train.steps)
    [group] = fold_groups(cells)
    context = TrialContext(sweep="fold", output_dir=str(tmp_path), storage_path=str(tmp_path), tracking_uri="unused",
                           experiment_id="0", parent_run_id="p", retry_seconds=1, threads=1, use_gpu=False)
    folded = group.trial_entry()[FOLDED]
    every = _fold_points(group.lead, folded, context, None, 0, "host node1234")
    assert [p.cell.settings.train.steps for p in every] == [2, 4, 6]
    after_retry = _fold_points(group.lead, folded, context, None, 4, "host node1234")
    assert [p.cell.settings.train.steps for p in after_retry] == [6]
    state = {"step": 4}
    assert resume_for_folds(state, True, after_retry) is state, "Tune's retry resumes: 6 is still ahead"
    assert resume_for_folds(state, False, every) is None, "a re-run with 2 and 4 unscored trains from the start"
    assert resume_for_folds(state, False, after_retry) is state, "a re-run with only 6 unscored resumes"
    assert resume_for_folds(None, False, every) is None


def test_plan_says_how_many_trainings_the_folded_cells_take(tmp_path):
    import yaml

    spec = {**SPEC, "seeds": [0, 1], "axes": {"train.steps": {"values": [2, 4, 6], "fold": True}}}
    (tmp_path / "fold.yaml").write_text(yaml.safe_dump(spec))
    result = ablate_cli("plan", "fold.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 cells (0 done, 0 failed, 6 to run)" in result.stdout
    assert "the 6 cells not done take 2 trainings" in result.stdout


def test_the_cost_estimate_counts_each_folded_training_once(tmp_path):
    from ablate.estimate import estimate_seconds, sweep_estimate

    cells = planned_cells(tmp_path, {**SPEC, "axes": {"train.steps": {"values": [200, 400, 800], "fold": True}}})
    plain, _ = sweep_estimate(cells, 1)
    folded, _ = sweep_estimate(cells, 1, folded=True)
    longest = max(cells, key=lambda c: c.settings.train.steps)
    shorter = [c for c in cells if c is not longest]
    assert folded == pytest.approx(estimate_seconds(longest) + sum(estimate_seconds(c, trained=False) for c in shorter))
    assert folded == pytest.approx(plain - sum(estimate_seconds(c) - estimate_seconds(c, trained=False) for c in shorter))
    assert folded < 0.7 * plain, "800 steps trained instead of 1,400"


def test_the_progress_line_counts_folded_cells_scored_before_their_training_failed():
    """A folded training that fails after scoring some of its cells: those are done, the rest failed."""
    import io
    from types import SimpleNamespace

    from ablate.schedule import _progress_callback
    from ablate.trial import CELL_FAILED, ERROR, FOLDED_SCORED

    out = io.StringIO()
    progress = _progress_callback(total=3, cached=0, concurrency=1, stream=out)
    lead = {"id": "lead", "name": "steps=6 seed=0", FOLDED: [{"id": "a"}, {"id": "b"}]}
    trial = SimpleNamespace(trial_id="t1", config={"cell": lead}, last_result=None)
    progress.on_trial_start(0, [], trial)
    trial.last_result = {CELL_FAILED: 1, ERROR: "DivergedError: training diverged: loss is nan", FOLDED_SCORED: 1}
    progress.on_trial_complete(1, [], trial)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("[3/3] done 1, cached 0, failed 2 |"), last
    assert "FAILED steps=6 seed=0 and 2 folded cell(s) (1 folded cell(s) scored before it): DivergedError" in last
