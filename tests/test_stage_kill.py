"""kill -9 during each TRL stage (dpo; reward_model and rloo of InstructGPT's recipe): a real
one-cell sweep through the CLI, its process group SIGKILLed once a checkpoint of that stage is in
Tune's storage, then run again. The cell finishes from that checkpoint (the stages before not run
again, the stage's Trainer resumed at the checkpoint's step) with the metrics and every step of
every series of the same cell run uninterrupted; no step is logged twice. Ends on the MLflow store."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from ablate import results
from tests.conftest import ablate_cli, descendants, kill_tree, start_cli, wait_until

pytestmark = pytest.mark.slow

SFT_STEPS, EVERY = 4, 4
BASE = {
    "data": {"source": "synthetic", "num_train_tasks": 6, "instances_per_task": 8},
    "model": "llama-nano",
    "train": {"steps": SFT_STEPS, "batch_size": 8, "learning_rate": 1e-3, "max_source_length": 64,
              "max_target_length": 8, "encoding": "def", "checkpoint_every": EVERY},
    "eval": {"instances_per_task": 6, "max_new_tokens": 4, "batch_size": 32,
             "evaluators": ["generate", "preference", "abstention"]},
    "seeds": [0],
}
DPO = [{"kind": "dpo", "steps": 40, "pairs": 48, "batch_size": 4, "learning_rate": 1e-3}]
RLHF = [{"kind": "reward_model", "steps": 24, "pairs": 48, "batch_size": 4, "learning_rate": 1e-3},
        {"kind": "rloo", "steps": 12, "batch_size": 4, "num_generations": 2, "prompts": 24, "learning_rate": 1e-4}]
# The stage killed, the stages after sft, and the stage's series.
CASES = {"dpo": (DPO, results.DPO_SERIES), "reward_model": (RLHF, results.REWARD_SERIES),
         "rloo": (RLHF, results.RLOO_SERIES)}
_REFERENCE: dict[str, dict] = {}  # stages -> the uninterrupted cell, run once per list of stages


def _spec(folder: Path, name: str, stages: list) -> Path:
    folder.mkdir()
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **BASE, "stages": ["sft", *stages]}, sort_keys=False))
    return path


def _checkpoint_steps(folder: Path, name: str) -> list[int]:
    """The cell's checkpoints in Tune's storage so far (the marker is written last: whole ones only)."""
    steps = []
    for marker in (folder / "ablate_runs" / name / "ray").glob("*/*/checkpoint_*/cell.json"):
        try:
            steps.append(json.loads(marker.read_text())["step"])
        except (OSError, ValueError, KeyError):
            pass
    return steps


def _cell_runs(folder: Path, name: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    return client, client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")


def _finished(folder: Path, name: str, series: tuple[str, ...]) -> dict:
    """The one cell's run: its model metrics, its step series and its tags."""
    client, runs = _cell_runs(folder, name)
    assert [r.info.status for r in runs] == ["FINISHED"], "one run, reattached by the rerun, FINISHED"
    run = runs[0]
    history = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                       key=lambda m: m.step)] for key in series}
    metrics = {k: v for k, v in run.data.metrics.items() if not results.is_machine_measure(k)}
    return {"metrics": metrics, "series": history, "tags": run.data.tags}


@pytest.mark.parametrize("killed", list(CASES))
def test_kill_9_during_a_trl_stage_resumes_from_its_checkpoint_with_the_uninterrupted_results(killed, tmp_path):
    stages, stage_series = CASES[killed]
    name = f"kill{killed.replace('_', '')}"
    steps = {s["kind"]: s["steps"] for s in stages}
    kinds = [s["kind"] for s in stages]
    before = SFT_STEPS + sum(steps[k] for k in kinds[:kinds.index(killed)])  # steps of the stages before it
    total = SFT_STEPS + sum(steps.values())
    series = (results.TRAIN_LOSS, *(key for s in stages for key in CASES[s["kind"]][1].values()))
    key = json.dumps(stages)
    if key not in _REFERENCE:
        reference_dir = tmp_path / "reference"
        done = ablate_cli("sweep", str(_spec(reference_dir, name, stages)), cwd=reference_dir)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _REFERENCE[key] = _finished(reference_dir, name, series)
    expected = _REFERENCE[key]
    for kind in kinds:
        assert expected["tags"][f"ablate.{kind}.resumed_from_step"] == "0"
        assert expected["tags"][f"ablate.{kind}.steps_trained"] == str(steps[kind])

    # Killed (the whole process group, then whatever left it) once a checkpoint of the stage is
    # stored: the checkpoints count on from the stages before, so one past `before` is the stage's.
    crashed_dir = tmp_path / "crashed"
    spec = _spec(crashed_dir, name, stages)
    sweep, below = start_cli("sweep", str(spec), cwd=crashed_dir), []
    try:
        inside = wait_until(lambda: sweep.poll() is not None or [s for s in _checkpoint_steps(crashed_dir, name)
                                                                 if s > before], 600,
                            f"a checkpoint of the {killed} stage in Tune's storage", every=0.05)
        below = descendants(sweep.pid)
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        kill_tree(sweep, also=below)
    assert inside is not True, f"the sweep ended before a {killed} checkpoint was stored"
    killed_at = max(_checkpoint_steps(crashed_dir, name))
    assert before < killed_at < before + steps[killed], f"killed mid-{killed}"
    client, runs = _cell_runs(crashed_dir, name)
    assert [r.info.status for r in runs] == ["RUNNING"], "the kill left the cell's run unfinished"
    assert not client.get_metric_history(runs[0].info.run_id, next(iter(stage_series.values()))), \
        f"the {killed} stage had not ended"

    again = ablate_cli("sweep", str(spec), cwd=crashed_dir)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    got = _finished(crashed_dir, name, series)
    # Resumed from the last checkpoint stored before the kill, in the killed stage: the stages
    # before were not run again and its Trainer went on from the checkpoint's step.
    resumed = int(got["tags"][results.RESUMED_FROM_STEP])
    assert killed_at <= resumed < before + steps[killed], (killed_at, resumed)
    assert got["tags"][f"ablate.{killed}.resumed_from_step"] == str(resumed - before)
    assert got["tags"][f"ablate.{killed}.steps_trained"] == str(before + steps[killed] - resumed)
    sft_steps = [s for s, _ in got["series"][results.TRAIN_LOSS]]
    assert sft_steps and sorted(set(sft_steps)) == sft_steps, "the SFT loss logged once per logged step"
    for kind in kinds:
        for series_key in CASES[kind][1].values():
            assert [s for s, _ in got["series"][series_key]] == list(range(1, steps[kind] + 1)), series_key
    # ... and ends where the uninterrupted cell ends: every model metric and every step of every series.
    assert got["metrics"].keys() >= {"rougeL", "pref_acc", "pref_margin", "abstain_rate", results.TRAIN_STEPS}
    assert got["metrics"][results.TRAIN_STEPS] == total
    assert got["metrics"] == expected["metrics"]
    assert got["series"] == expected["series"]
