"""A cell's recipe run directly (no Ray) against a real MLflow SQLite store: its stages and
evaluators from the registries, every declared metric logged under its key and read back."""

import json
from pathlib import Path

import yaml

from ablate import results
from ablate.cell import CellPlace, run_cell
from ablate.cell_clock import PARTS
from ablate.plan import expand_grid
from ablate.spec import load_spec
from tests.conftest import cell_tracker, planned_cells

SPEC = {
    "name": "cell", "data": {"source": "synthetic", "num_train_tasks": 4, "instances_per_task": 8},
    "model": "t5-nano",
    "train": {"steps": 6, "batch_size": 8, "learning_rate": 1e-3, "max_source_length": 96, "max_target_length": 8,
              "encoding": "def", "options_in_prompt": True},
    "eval": {"instances_per_task": 4, "max_new_tokens": 4, "options_in_prompt": True,
             "evaluators": ["generate", {"kind": "rank", "batch_size": 16}]},
    "seeds": [0],
}


def _run(tmp_path: Path, spec: dict):
    cell = planned_cells(tmp_path, spec)[0]
    tracker, store = cell_tracker(tmp_path, cell, "cell")
    headline = run_cell(cell, CellPlace(cache_dir=tmp_path / "cache"), tracker)
    tracker.finish()
    return cell, headline, store.client.get_run(tracker.run_id), store


def test_a_cell_runs_every_listed_evaluator_and_logs_their_declared_metrics(tmp_path):
    cell, headline, run, store = _run(tmp_path, SPEC)
    # The headline holds both evaluators' overall scores on the first test encoding.
    assert set(headline) == {"exact_match", "rouge1", "rougeL", "acc", "acc_norm", "ll_correct"}
    metrics = run.data.metrics
    parsed = {results.parse_metric_key(k) for k in metrics} - {None}
    assert {(p.metric, p.group) for p in parsed} >= {("acc", None), ("acc", "task"), ("acc", "cluster"),
                                                     ("ll_correct", "category"), ("rougeL", None)}
    assert 0.0 <= metrics["def/acc"] <= 100.0 and metrics["def/ll_correct"] <= 0.0
    # Where the time went: every part logged, training and evaluation took time, none is negative.
    parts = {k: v for k, v in metrics.items() if results.is_cell_time_key(k)}
    assert set(parts) == {results.cell_time_key(p) for p in PARTS}
    assert min(parts.values()) >= 0.0 and parts["time/train_seconds"] > 0 and parts["time/eval_seconds"] > 0
    assert parts["time/logging_seconds"] > 0 and parts["time/startup_seconds"] == 0.0  # no trial: no start-up
    # Rank records hold each option's score; tasks without options are listed as unscored by rank.
    folder = Path(store.client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts")))
    records = [json.loads(line) for line in (folder / results.predictions_artifact("def", "rank")).read_text().splitlines()]
    assert records and all(len(r["scores"]) == len(r["options"]) >= 2 and r["choice"] in r["options"] for r in records)
    unscored = json.loads((folder / results.unscored_artifact("def", "rank")).read_text())
    ranked_tasks = {r["task"] for r in records}
    assert unscored and not set(unscored) & ranked_tasks
    # Generation still scores every test task, those without options included.
    generated = {json.loads(line)["task"] for line in (folder / results.predictions_artifact("def")).read_text().splitlines()}
    assert generated == ranked_tasks | set(unscored)


def test_options_in_prompt_changes_the_cell_and_its_sources(tmp_path):
    from ablate.data.build import build_test_dataset
    from ablate.data.cell_data import open_cell_data

    spec = load_spec_from(tmp_path, SPEC)
    plain = load_spec_from(tmp_path, {**SPEC, "eval": {**SPEC["eval"], "options_in_prompt": False}})
    with_options, without = (expand_grid(s, "fp")[0] for s in (spec, plain))
    assert with_options.id != without.id
    data = open_cell_data(with_options.settings, tmp_path / "cache")
    rows = build_test_dataset(data.test_pairs, "def", None, data.cluster_of, data.test_options).to_dict()
    for source, options in zip(rows["source"], data.test_options):
        assert ("\n\nOPTIONS:\n- " in source) == bool(options)
        if options:
            assert all(f"- {o}" in source for o in options)


def load_spec_from(tmp_path: Path, raw: dict):
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path, [], tmp_path)
