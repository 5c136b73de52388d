"""End to end through the real `ablate` entry point: real Ray Tune, real MLflow SQLite store."""

import json
from pathlib import Path

import pytest

from ablate.data.library import TaskLibrary
from ablate.analyse.report_model import Report
from tests.conftest import REPO, ablate_cli

pytestmark = pytest.mark.slow
SMOKE = str(REPO / "sweeps" / "smoke.yaml")


def _runs(workdir: Path, experiment: str = "smoke"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id], max_results=1000)


def test_smoke_sweep_records_one_parent_and_a_finished_child_per_cell_then_caches(smoke_sweep, synthetic_dir):
    tmp_path, first = smoke_sweep
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[4/4] done 4, cached 0, failed 0" in first.stdout
    assert "4 trained, 0 cached, 0 failed, of 4 cells" in first.stdout and "Browse: ablate ui" in first.stdout
    assert "Token authentication" not in first.stdout + first.stderr, "a local Ray runtime starts without Ray's warning"

    client, runs = _runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("ablate.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("ablate.role") == "cell"]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"spec.resolved.yaml", "plan.json"}
    plan = json.loads((tmp_path / "ablate_runs" / "smoke" / "plan.json").read_text())
    assert {c["id"] for c in plan["cells"]} == {r.data.tags["ablate.cell_id"] for r in children}
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["ablate.data_fingerprint"] and child.data.tags["ablate.version"]
        assert child.info.run_name.startswith("instances_per_task=")
        assert child.data.params["train.encoding"] == "def+pos2" and child.data.params["model"] == "t5-tiny"
        assert child.data.params["data.instances_per_task"] in ("8", "16")
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert [m.step for m in history] == [10, 20, 30] and history[-1].value < history[0].value
        metrics = child.data.metrics
        for key in ("exact_match", "rougeL", "def-pos2/exact_match", "def-pos2/cluster/nli/exact_match",
                    "def-pos2/category/textual_entailment/headline", "train_seconds", "examples_per_second"):
            assert key in metrics, key
        assert any(k.startswith("def-pos2/task/task") for k in metrics)
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "predictions")}
        assert artifacts == {"predictions/def-pos2.jsonl"}
        lines = client.download_artifacts(child.info.run_id, "predictions/def-pos2.jsonl", str(tmp_path / "dl"))
        records = [json.loads(line) for line in Path(lines).read_text().splitlines()]
        held_out_tasks = set(TaskLibrary(synthetic_dir).split("default").test_tasks)
        assert {r["task"] for r in records} == held_out_tasks
        assert len(records) == len(held_out_tasks) * 10 and {"id", "task", "prediction", "references"} <= set(records[0])

    assert (tmp_path / "ablate_runs" / "smoke" / "report" / "smoke.png").is_file(), "the report runs at the end"

    # Where the time went: each cell's wall time as the driver saw it, the sweep's phases and efficiency.
    assert "Time: " in first.stdout and "x the ideal" in first.stdout
    timing = parent.data.metrics
    assert timing["timing/concurrency"] == 2 and timing["timing/total_seconds"] > timing["timing/cells_seconds"] > 0
    walls = [c.data.metrics["cell_wall_seconds"] for c in children]
    assert timing["timing/cell_seconds_sum"] == pytest.approx(sum(walls))
    assert timing["timing/efficiency"] == pytest.approx(
        timing["timing/total_seconds"] / (sum(walls) / 2))
    for child in children:
        m = child.data.metrics
        assert m["cell_wall_seconds"] >= m["train_seconds"] + m["eval_seconds"]
        # The parts and the launch never hold more than the driver's wall time (a prestarted
        # worker's idle life before the trial is in none of them).
        assert "time/launch_seconds" in m and m["time/unaccounted_seconds"] >= 0
    workers = {c.data.tags["ablate.worker_pid"] for c in children}
    assert len(workers) <= 2, "4 cells, 2 at a time: a finished cell's worker runs the next one"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} >= {
        "report/smoke.png", "report/smoke.html", "report/report.json"}

    second = ablate_cli("sweep", SMOKE, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 trained, 4 cached, 0 failed" in second.stdout
    _, again = _runs(tmp_path)
    assert len(again) == 5, "a re-run adds no run"
    planned = json.loads(ablate_cli("plan", SMOKE, "--json", cwd=tmp_path).stdout)
    assert [c["status"] for c in planned["cells"]] == ["done"] * 4


def test_bad_spec_exits_2_and_starts_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SMOKE).read_text().replace("instances_per_task: [8, 16]", "instances_per_task: [8, 4000]")
                   .replace("model: t5-tiny", "model: t5-tiniest"))
    result = ablate_cli("sweep", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "bad.yaml" in result.stderr
    assert "Did you mean 't5-tiny'?" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "nothing written, no store created"
    spec_ok_data_bad = tmp_path / "toomany.yaml"
    spec_ok_data_bad.write_text(Path(SMOKE).read_text().replace("[8, 16]", "[8, 4000]"))
    result = ablate_cli("sweep", str(spec_ok_data_bad), cwd=tmp_path)
    assert result.returncode == 2 and "asks for 4000 instances" in result.stderr and "which has 400" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "toomany.yaml"]


def _tiny(spec: str, tmp_path: Path, *extra: str):
    """A shipped sweep through the real CLI at a few steps, one seed, a few test instances."""
    return ablate_cli("sweep", str(REPO / "sweeps" / spec), "--set", "train.steps=4", "--set", "seeds=[0]",
                      "--set", "eval.instances_per_task=4", "--set", "train.checkpoint_every=2", *extra,
                      cwd=tmp_path)


def _report(tmp_path: Path, name: str) -> Report:
    """The sweep's report.json, read back into the typed report."""
    return Report.model_validate(json.loads((tmp_path / "ablate_runs" / name / "report" / "report.json").read_text()))


def test_the_architecture_sweep_mixes_t5_and_llama_full_and_lora_end_to_end(tmp_path):
    result = _tiny("architecture.yaml", tmp_path, "--set", "train.save_model=true")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 trained, 0 cached, 0 failed" in result.stdout
    client, runs = _runs(tmp_path, "architecture")
    cells = [r for r in runs if r.data.tags.get("ablate.role") == "cell"]
    by_name = {r.info.run_name: r for r in cells}
    assert set(by_name) == {"model=t5-tiny lora=null seed=0", "model=t5-tiny lora=r=16,alpha=32 seed=0",
                            "model=llama-tiny lora=null seed=0", "model=llama-tiny lora=r=16,alpha=32 seed=0"}
    for name, run in by_name.items():
        metrics = run.data.metrics
        assert run.info.status == "FINISHED" and run.data.tags["ablate.device"] == "cpu"
        full = metrics["num_parameters"] == metrics["num_trainable_parameters"]
        assert full == ("lora=null" in name), name
        assert metrics["peak_memory_mb"] > 0 and "def/cluster/nli/rougeL" in metrics
    from transformers import AutoModelForCausalLM

    full = by_name["model=llama-tiny lora=null seed=0"]
    folder = client.download_artifacts(full.info.run_id, "model", str(tmp_path / "model"))
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in loaded.parameters()) == full.data.metrics["num_parameters"]
    adapter = {a.path for a in client.list_artifacts(by_name["model=t5-tiny lora=r=16,alpha=32 seed=0"].info.run_id,
                                                     "model")}
    assert "model/adapter_config.json" in adapter, "a LoRA cell logs its adapter"
    matrix = _report(tmp_path, "architecture").matrix
    assert matrix.rows == ["t5-tiny", "llama-tiny"] and matrix.columns == ["null", "r=16,alpha=32"]


def test_zero_versus_few_shot_runs_end_to_end_and_draws_the_grouped_chart(tmp_path):
    result = _tiny("zero_vs_few_shot.yaml", tmp_path, "--set", "train.steps=4", "--set", "axes.train.steps=[0,4]")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _, runs = _runs(tmp_path, "zero_vs_few_shot")
    untuned = [r for r in runs if r.data.tags.get("ablate.role") == "cell" and r.data.metrics.get("train_steps") == 0]
    assert len(untuned) == 1 and untuned[0].data.metrics["num_train_tasks"] == 0
    bars = _report(tmp_path, "zero_vs_few_shot").bars
    assert bars.groups == ["closed_book_qa", "commonsense", "nli", "mean"]
    assert set(bars.series) == {"untuned, zero-shot (def)", "untuned, few-shot (def+pos2)",
                                   "instruction-tuned, zero-shot (def)"}
    assert (tmp_path / "ablate_runs" / "zero_vs_few_shot" / "report" / "zero_vs_few_shot.png").stat().st_size > 10_000


def test_the_clusters_curve_can_start_from_the_untuned_model(tmp_path):
    result = _tiny("clusters.yaml", tmp_path, "--set",
                   "axes.train_clusters={cumulative: [program_execution, extraction, summarization], from_none: true}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = _report(tmp_path, "clusters")
    mean = report.curves.lines["mean"]
    assert [p.x for p in mean.points] == [1.0, 2.0, 3.0] and mean.untuned.n == 1
