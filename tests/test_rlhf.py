"""InstructGPT's own recipe as stages: a reward model (TRL's RewardTrainer) on the preference pairs,
then RLOO (TRL's RLOOTrainer) of the SFT policy against it. A tiny llama built locally, run in
process (no Ray) against a real MLflow SQLite store."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate import results
from tests.conftest import cell_tracker, planned_cells

REWARD = {"kind": "reward_model", "steps": 30, "pairs": 48, "batch_size": 8, "learning_rate": 3e-3}
RLOO = {"kind": "rloo", "steps": 4, "batch_size": 8, "num_generations": 4, "prompts": 16, "learning_rate": 1e-3,
        "beta": 0.05}
SPEC = {
    "name": "rlhf", "data": {"source": "synthetic", "num_train_tasks": 6, "instances_per_task": 8},
    "model": "llama-nano",
    "train": {"steps": 8, "batch_size": 8, "learning_rate": 1e-3, "max_source_length": 64, "max_target_length": 8,
              "encoding": "def"},
    "eval": {"instances_per_task": 6, "max_new_tokens": 4, "batch_size": 32, "evaluators": ["generate", "preference"]},
    "stages": ["sft", REWARD, RLOO],
    "seeds": [0],
}


def _series(store, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in store.client.get_metric_history(run_id, key))


def _stages(tmp_path: Path):
    """The cell's data, SFT-trained model and a StageInput maker sharing one `carried` dict."""
    from ablate.cell import CellPlace, build_cell_model
    from ablate.data.cell_data import open_cell_data
    from ablate.stages import sft
    from ablate.stages.base import StageInput

    cell = planned_cells(tmp_path, SPEC)[0]
    tracker, store = cell_tracker(tmp_path, cell, "rlhf")
    place = CellPlace(cache_dir=tmp_path / "cache")
    data = open_cell_data(cell.settings, place.cache_dir)
    built = build_cell_model(cell.settings, data.library.root, place, tracker)
    carried: dict = {}

    def given():
        return StageInput(built.model, built.tokenizer, built.tokenizer_id, built.truncation, cell.settings, data,
                          tracker, place.cache_dir, "cpu", None, None, carried)

    sft.run(given(), cell.settings.stages[0])
    return cell, built, given, carried, tracker, store


def test_the_reward_model_ranks_training_chosen_above_rejected_more_often_after_training(tmp_path):
    import torch

    from ablate.stages import reward_model

    cell, built, given, carried, tracker, store = _stages(tmp_path)
    config = cell.settings.stages[1]
    train = cell.settings.train
    pairs, _ = reward_model.cell_pairs(given(), config.source, config.pairs)
    data = reward_model.tokenized_pairs(built.tokenizer, pairs, train.max_source_length, train.max_target_length)
    pad = built.tokenizer.pad_token_id
    before = reward_model.ranking_accuracy(reward_model.reward_model_from(built.model, pad, cell.settings.seed),
                                           data, pad)
    policy = {n: p.detach().clone() for n, p in built.model.named_parameters()}

    output = reward_model.run(given(), config)
    tracker.finish()
    trained = carried[reward_model.CARRIED_KEY]
    after = reward_model.ranking_accuracy(trained, data, pad)
    assert after > before + 20, (before, after)
    # The reward model is a copy: the policy the next stages train is as SFT left it.
    assert all(torch.equal(p, policy[n]) for n, p in built.model.named_parameters())
    assert output.train.steps == 30 and len(output.train.loss_history) == 30
    run = store.client.get_run(tracker.run_id)
    for key in results.REWARD_SERIES.values():
        assert [s for s, _ in _series(store, tracker.run_id, key)] == list(range(1, 31)), key
    assert 0.0 <= run.data.metrics[results.REWARD_HELD_OUT_ACCURACY] <= 100.0
    assert run.data.metrics[results.NUM_REWARD_PAIRS] == len(pairs) == 48


def test_rloo_changes_the_policy_against_the_reward_model_and_logs_its_reward_per_step(tmp_path):
    import torch

    from ablate.stages import reward_model, rloo

    cell, built, given, carried, tracker, store = _stages(tmp_path)
    reward_model.run(given(), cell.settings.stages[1])
    before = {n: p.detach().clone() for n, p in built.model.named_parameters()}
    scorer = {n: p.detach().clone() for n, p in carried[reward_model.CARRIED_KEY].named_parameters()}
    output = rloo.run(given(), cell.settings.stages[2])
    tracker.finish()
    after = dict(built.model.named_parameters())
    changed = [n for n, p in before.items() if not torch.equal(p, after[n])]
    assert changed and all(torch.isfinite(p).all() for p in after.values())
    assert all(torch.equal(p, scorer[n]) for n, p in carried[reward_model.CARRIED_KEY].named_parameters()), \
        "the reward model is not trained by RL"
    assert output.train.steps == 4
    rewards = _series(store, tracker.run_id, results.RLOO_REWARD)
    assert [s for s, _ in rewards] == [1, 2, 3, 4] and all(abs(v) < 1e6 for _, v in rewards)
    # The KL is to the policy as the stage found it: none at the first step, some once it has moved.
    kl = _series(store, tracker.run_id, results.RLOO_SERIES["kl"])
    assert [s for s, _ in kl] == [1, 2, 3, 4] and kl[0][1] == 0 and any(v != 0 for _, v in kl[1:]), kl
    # The model as the evaluators expect it: TRL's fused log-prob head off, its name as it was.
    assert "forward" not in vars(built.model) and built.model.config._name_or_path == ""
    assert built.model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape[-1] == built.model.config.vocab_size


def test_a_cell_with_sft_reward_model_and_rloo_runs_and_is_scored(tmp_path):
    from ablate.cell import CellPlace, run_cell

    cell = planned_cells(tmp_path, {**SPEC, "stages": ["sft", {**REWARD, "steps": 6}, {**RLOO, "steps": 2}]})[0]
    tracker, store = cell_tracker(tmp_path, cell, "rlhf")
    headline = run_cell(cell, CellPlace(cache_dir=tmp_path / "cache"), tracker)
    tracker.finish()
    metrics = store.client.get_run(tracker.run_id).data.metrics
    assert {"rougeL", "pref_acc"} <= set(headline)
    assert metrics[results.TRAIN_STEPS] == 8 + 6 + 2
    assert [s for s, _ in _series(store, tracker.run_id, results.RLOO_REWARD)] == [1, 2]


def _validate(tmp_path: Path, spec: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run([sys.executable, "-m", "ablate.cli", "validate", str(path)], check=False, capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)


def test_an_encoder_decoder_model_with_reward_model_and_rloo_is_refused_before_anything_starts(tmp_path):
    done = _validate(tmp_path, {**SPEC, "model": "t5-nano"})
    assert done.returncode == 2, done.stderr
    assert "reward_model needs a decoder-only model (TRL's RewardTrainer" in done.stderr
    assert "rloo needs a decoder-only model (TRL's RLOOTrainer" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ablate_runs").exists()


def test_rloo_without_a_reward_model_before_it_is_refused_before_anything_starts(tmp_path):
    done = _validate(tmp_path, {**SPEC, "stages": ["sft", RLOO, REWARD]})
    assert done.returncode == 2, done.stderr
    assert "no reward_model stage comes before it (sft -> rloo -> reward_model)" in done.stderr
    assert "Traceback" not in done.stderr


def test_rloo_batches_hold_whole_groups_of_completions(tmp_path):
    from ablate.errors import AblateError

    with pytest.raises(AblateError, match="must be a multiple of num_generations"):
        planned_cells(tmp_path, {**SPEC, "stages": ["sft", REWARD, {**RLOO, "batch_size": 6}]})


def test_rloo_must_follow_its_reward_model_directly(tmp_path):
    """The reward model lives in memory only: a checkpointing stage between it and rloo would
    make a resumed cell skip it."""
    done = _validate(tmp_path, {**SPEC, "stages": ["sft", REWARD, {"kind": "dpo", "steps": 2}, RLOO]})
    assert done.returncode == 2, done.stderr
    assert "rloo must come right after its reward_model stage (sft -> reward_model -> dpo -> rloo)" in done.stderr
    assert "Traceback" not in done.stderr
