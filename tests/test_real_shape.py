"""Acceptance on SuperNI-shaped task files (tests/fixtures/superni_shaped): awkward category names
(arrows, parentheses, slashes, quotes, non-ASCII), non-English text, several references per
instance, tasks no cluster holds and instances without ids. A full tiny sweep through the real
CLI must finish every cell and score every test task."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ablate import results
from ablate.data.library import TaskLibrary
from ablate.analyse.report_model import Report
from tests.conftest import FIXTURES, ablate_cli

pytestmark = pytest.mark.slow
SHAPED = FIXTURES / "superni_shaped"


def _spec(folder: Path) -> Path:
    """The spec names its data by a relative path: Ray workers run in other folders, so ablate must
    make it absolute before planning."""
    shutil.copytree(SHAPED, folder / "shaped")
    spec = {"name": "shaped", "data": {"source": "./shaped", "instances_per_task": 8}, "model": "t5-nano",
            "train": {"steps": 12, "batch_size": 8, "learning_rate": 1.0e-3, "max_source_length": 96,
                      "max_target_length": 12, "encoding": "def+pos2", "log_every": 4},
            "eval": {"instances_per_task": 6, "max_new_tokens": 6, "encodings": ["def+pos2", "def"]},
            "seeds": [0], "resources": {"max_concurrent": 2}, "axes": {"instances_per_task": [4, 8]}}
    path = folder / "shaped.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return path


def test_a_sweep_on_superni_shaped_files_finishes_and_scores_every_test_task(tmp_path):
    from mlflow.tracking import MlflowClient

    spec = _spec(tmp_path)
    library = TaskLibrary(SHAPED)
    test_tasks = library.split("default").test_tasks

    checked = ablate_cli("validate", str(spec), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "Warning: 2 test task(s) have a category no cluster names" in checked.stdout
    assert "Text Generation -> Word Generation" in checked.stdout and results.NO_CLUSTER in checked.stdout

    swept = ablate_cli("sweep", str(spec), cwd=tmp_path)
    assert swept.returncode == 0, swept.stdout[-3000:] + swept.stderr[-3000:]
    assert "2 trained, 0 cached, 0 failed" in swept.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("shaped")
    cells = client.search_runs([experiment.experiment_id], f"tags.`{results.ROLE}` = '{results.ROLE_CELL}'")
    assert len(cells) == 2 and {r.info.status for r in cells} == {"FINISHED"}
    for run in cells:
        parsed = [results.parse_metric_key(k) for k in run.data.metrics]
        for encoding in ("def+pos2", "def"):
            scored_tasks = {p.name for p in parsed if p and p.encoding == encoding and p.group == "task"}
            assert scored_tasks == set(test_tasks), "every test task is scored under every test encoding"
            clusters = {p.name for p in parsed if p and p.encoding == encoding and p.group == "cluster"}
            assert clusters == {"closed_book_qa", "nli", results.NO_CLUSTER}
        categories = {p.name for p in parsed if p and p.group == "category"}
        assert {"text_generation_->_word_generation", "question_answering"} <= categories
        names = json.loads(Path(client.download_artifacts(run.info.run_id, results.NAMES_ARTIFACT,
                                                          str(tmp_path / run.info.run_id))).read_text())
        assert set(names.values()) >= set(test_tasks) | {results.NO_CLUSTER}
        predictions = client.download_artifacts(run.info.run_id, results.predictions_artifact("def"),
                                                str(tmp_path / run.info.run_id))
        ids = [json.loads(line)["id"] for line in Path(predictions).read_text(encoding="utf-8").splitlines()]
        assert "task1001_wordgen_rhymes-0" in ids, "instances without an id get <task name>-<index>"
        assert len(ids) == 6 * len(test_tasks)

    report = Report.model_validate(json.loads(ablate_cli("report", str(spec), "--json", cwd=tmp_path).stdout))
    lines = report.curves.lines
    assert set(lines) == {"mean", "closed_book_qa", "nli", results.NO_CLUSTER}
    for point, *per_cluster in zip(lines["mean"].points, lines["closed_book_qa"].points, lines["nli"].points,
                                   lines[results.NO_CLUSTER].points):
        assert point.mean == pytest.approx(sum(p.mean for p in per_cluster) / 3)
    assert set(report.baselines["copy_demo"]) == set(lines)

    planned = json.loads(ablate_cli("plan", str(spec), "--json", cwd=tmp_path).stdout)
    assert (planned["done"], planned["failed"], planned["to_run"]) == (2, 0, 0)
    assert [c["status"] for c in planned["cells"]] == ["done", "done"]
