"""A sweep on release-shaped data held out by cluster, then the data changes (issue 24), through the
real CLI, Ray and an MLflow SQLite store. The model is the `copy_demo` heuristic, so the cells are
quick: what is checked is which tasks they use, what the runs record, and what a re-run says."""

import shutil

import pytest
import yaml

from ablate import results
from tests.conftest import FIXTURES, ablate_cli

pytestmark = pytest.mark.slow
SHAPED = FIXTURES / "superni_shaped"
REMOVED = "task1010_trivia_answer_verification"


def test_held_out_cells_record_the_split_rules_and_a_rerun_after_a_data_change_supersedes_old_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    shutil.copytree(SHAPED, tmp_path / "shaped")
    spec = {"name": "changes", "data": {"source": "./shaped", "instances_per_task": 4,
                                        "held_out_clusters": ["nli", "closed_book_qa"]},
            "model": "copy_demo",
            "train": {"steps": 1, "batch_size": 4, "learning_rate": 1.0e-3, "max_source_length": 64,
                      "max_target_length": 8, "encoding": "def+pos1"},
            "eval": {"instances_per_task": 4}, "seeds": [0], "axes": {"num_train_tasks": [1, 2]}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    planned = ablate_cli("plan", "spec.yaml", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert ("Tasks: 3 test task(s) from the held-out clusters (nli, closed_book_qa); removed: 1 task(s) not in "
            "split 'default' (never used); 2 test task(s) of split 'default' outside the held-out clusters (not "
            "used); 1 training task(s) of split 'default' in the held-out clusters") in planned.stdout
    first = ablate_cli("sweep", "spec.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("changes")

    def cell_runs():
        return client.search_runs([experiment.experiment_id], f"tags.`{results.ROLE}` = '{results.ROLE_CELL}'")

    old = cell_runs()
    assert len(old) == 2
    for run in old:
        metrics = run.data.metrics
        assert metrics[results.TASKS_REMOVED_PREFIX + "unlisted"] == 1
        assert metrics[results.TASKS_REMOVED_PREFIX + "split_test"] == 2
        assert metrics[results.TASKS_REMOVED_PREFIX + "held_out"] == 1
        scored = {p.name for p in map(results.parse_metric_key, metrics) if p and p.group == "task"}
        assert scored == {"task1002_wiki_de_question_answering", "task1003_jp_entailment", REMOVED}

    # The data change: a task of a held-out cluster is removed from the directory and its split.
    (tmp_path / "shaped" / "tasks" / f"{REMOVED}.json").unlink()
    train_list = tmp_path / "shaped" / "splits" / "default" / "train_tasks.txt"
    train_list.write_text(train_list.read_text().replace(f"{REMOVED}\n", ""))
    shutil.rmtree(tmp_path / "ablate_runs" / "changes" / "report")
    (tmp_path / "ablate_runs" / "changes" / "report").write_text("a file where the report folder goes")

    second = ablate_cli("sweep", "spec.yaml", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Marked 2 run(s) of earlier data or settings as superseded" in second.stdout
    assert "2 cached" not in second.stdout and "Report not written" in second.stdout
    time_line = next(line for line in second.stdout.splitlines() if line.startswith("Time:"))
    assert "report" not in time_line, time_line
    runs = cell_runs()
    assert len(runs) == 4
    current = [r for r in runs if results.SUPERSEDED not in r.data.tags]
    superseded = [r for r in runs if results.SUPERSEDED in r.data.tags]
    assert {r.info.run_id for r in superseded} == {r.info.run_id for r in old}
    assert {r.data.tags[results.SUPERSEDED] for r in superseded} == {r.data.tags[results.CELL_ID] for r in current}
    assert all(r.info.run_name.endswith(" (superseded)") for r in superseded)
    for run in current:
        scored = {p.name for p in map(results.parse_metric_key, run.data.metrics) if p and p.group == "task"}
        assert REMOVED not in scored and run.data.metrics[results.TASKS_REMOVED_PREFIX + "held_out"] == 0
