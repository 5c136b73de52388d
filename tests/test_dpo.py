"""The dpo stage and the preference evaluators, run in a cell directly (no Ray) against a real
MLflow SQLite store: a tiny llama fine-tuned, then preference-tuned with TRL's DPOTrainer."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate import results
from ablate.cell import CellPlace, STAGE_KEY, run_cell
from ablate.data.sources import source_fingerprint
from ablate.plan import expand_grid
from ablate.spec import load_spec
from ablate.track.cell_run import CellTracker
from ablate.track.store import Store

pytest.importorskip("trl", reason="the dpo stage needs the preference extra: pip install -e '.[preference]'")

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
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    loaded = load_spec(path, [], tmp_path)
    return expand_grid(loaded, source_fingerprint(loaded.data.source, loaded.data.synthetic_seed))


def _tracker(tmp_path: Path, cell):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = Store(uri)
    experiment_id = store.ensure_experiment("dpo")
    tracker = CellTracker.start(uri, experiment_id, "parent", cell_id=cell.id, name=cell.name, sweep="dpo",
                                axis_values={}, settings=cell.settings.model_dump(mode="json"),
                                data_fingerprint=cell.settings.data_fingerprint)
    return tracker, store
