"""kill -9 during the dpo stage: a real one-cell sweep (sft then dpo) through the CLI, its process
group SIGKILLed once a DPO checkpoint is in Tune's storage, then run again. The cell finishes from
that checkpoint (SFT not run again, the DPO Trainer resumed at the checkpoint's step) with the
metrics of the same cell run uninterrupted. Ends on the MLflow store."""

import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from ablate import results
from tests.conftest import ablate_cli, descendants, kill_tree, start_cli, wait_until

pytestmark = pytest.mark.slow

SFT_STEPS, DPO_STEPS, EVERY = 4, 40, 4
SPEC = {
    "name": "dpokill", "data": {"source": "synthetic", "num_train_tasks": 6, "instances_per_task": 8},
    "model": "llama-nano",
    "train": {"steps": SFT_STEPS, "batch_size": 8, "learning_rate": 1e-3, "max_source_length": 64,
              "max_target_length": 8, "encoding": "def", "checkpoint_every": EVERY},
    "eval": {"instances_per_task": 6, "max_new_tokens": 4, "batch_size": 32,
             "evaluators": ["generate", "preference", "abstention"]},
    "stages": ["sft", {"kind": "dpo", "steps": DPO_STEPS, "pairs": 48, "batch_size": 4, "learning_rate": 1e-3}],
    "seeds": [0],
}
SERIES = (results.TRAIN_LOSS, *results.DPO_SERIES.values())


def _spec(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "dpokill.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return path


def _checkpoint_steps(folder: Path) -> list[int]:
    """The cell's checkpoints in Tune's storage so far (the marker is written last: whole ones only)."""
    steps = []
    for marker in (folder / "ablate_runs" / "dpokill" / "ray").glob("*/*/checkpoint_*/cell.json"):
        try:
            steps.append(json.loads(marker.read_text())["step"])
        except (OSError, ValueError, KeyError):
            pass
    return steps


def _cell_runs(folder: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dpokill")
    return client, client.search_runs([experiment.experiment_id], "tags.`ablate.role` = 'cell'")


def _finished(folder: Path) -> dict:
    """The one cell's run: its model metrics, its step series and its tags."""
    client, runs = _cell_runs(folder)
    assert [r.info.status for r in runs] == ["FINISHED"], "one run, reattached by the rerun, FINISHED"
    run = runs[0]
    series = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                      key=lambda m: m.step)] for key in SERIES}
    metrics = {k: v for k, v in run.data.metrics.items() if not results.is_machine_measure(k)}
    return {"metrics": metrics, "series": series, "tags": run.data.tags}


def test_kill_9_during_the_dpo_stage_resumes_from_its_checkpoint_with_the_uninterrupted_results(tmp_path):
    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    done = ablate_cli("sweep", str(_spec(reference_dir)), cwd=reference_dir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    expected = _finished(reference_dir)
    assert expected["tags"]["ablate.dpo.resumed_from_step"] == "0"
    assert expected["tags"]["ablate.dpo.steps_trained"] == str(DPO_STEPS)

    # Killed (the whole process group, then whatever left it) once a DPO checkpoint is stored:
    # the checkpoints count on from the SFT steps, so one past SFT_STEPS is the DPO stage's.
    spec = _spec(crashed_dir)
    sweep, below = start_cli("sweep", str(spec), cwd=crashed_dir), []
    try:
        in_dpo = wait_until(lambda: sweep.poll() is not None or [s for s in _checkpoint_steps(crashed_dir)
                                                                 if s > SFT_STEPS], 300,
                            "a checkpoint of the dpo stage in Tune's storage", every=0.05)
        below = descendants(sweep.pid)
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        kill_tree(sweep, also=below)
    assert in_dpo is not True, "the sweep ended before a dpo checkpoint was stored"
    killed_at = max(_checkpoint_steps(crashed_dir))
    assert SFT_STEPS < killed_at < SFT_STEPS + DPO_STEPS, "killed mid-DPO"
    client, runs = _cell_runs(crashed_dir)
    assert [r.info.status for r in runs] == ["RUNNING"], "the kill left the cell's run unfinished"
    assert not client.get_metric_history(runs[0].info.run_id, results.DPO_LOSS), "the dpo stage had not ended"

    again = ablate_cli("sweep", str(spec), cwd=crashed_dir)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    got = _finished(crashed_dir)
    # Resumed from the last checkpoint stored before the kill, in the dpo stage: SFT was not run
    # again (its loss logged once per step, by the killed process) and DPO's Trainer went on from
    # the checkpoint's step, training only the steps after it.
    resumed = int(got["tags"][results.RESUMED_FROM_STEP])
    assert killed_at <= resumed < SFT_STEPS + DPO_STEPS, (killed_at, resumed)
    assert got["tags"]["ablate.dpo.resumed_from_step"] == str(resumed - SFT_STEPS)
    assert got["tags"]["ablate.dpo.steps_trained"] == str(SFT_STEPS + DPO_STEPS - resumed)
    sft_steps = [s for s, _ in got["series"][results.TRAIN_LOSS]]
    assert sft_steps and sorted(set(sft_steps)) == sft_steps, "the SFT loss logged once per logged step"
    for key in results.DPO_SERIES.values():
        assert [s for s, _ in got["series"][key]] == list(range(1, DPO_STEPS + 1)), key
    # ... and ends where the uninterrupted cell ends: every model metric and every step of every series.
    assert got["metrics"].keys() >= {"rougeL", "pref_acc", "pref_margin", "abstain_rate",
                                     results.DPO_HELD_OUT_ACCURACY, results.TRAIN_STEPS}
    assert got["metrics"][results.TRAIN_STEPS] == SFT_STEPS + DPO_STEPS
    assert got["metrics"] == expected["metrics"]
    assert got["series"] == expected["series"]
