"""What the performance benchmarks share: a figure with its target, the real `ablate` CLI run in a
work folder, the runs a sweep left in its MLflow store, and one cell's data and model built with
ablate's own data layer (so a bare loop and ablate train on identical batches)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@dataclass
class Figure:
    name: str
    value: float | None
    target: str = ""  # e.g. "<= 1.02"; empty: reported, not judged
    ok: bool | None = None  # None: no target, or not measured here
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-" if self.value is not None else "NOT RUN"}[self.ok]


def check(name: str, value: float, sign: str, bound: float, note: str = "") -> Figure:
    ok = {"<=": value <= bound, "<": value < bound, ">=": value >= bound}[sign]
    return Figure(name, value, f"{sign} {bound:g}", ok, note)


def info(name: str, value: float | None, note: str = "") -> Figure:
    return Figure(name, value, "", None, note)


def print_figures(title: str, figures: list[Figure]) -> None:
    print(f"\n== {title}")
    for f in figures:
        value = "-" if f.value is None else f"{f.value:10.3f}"
        print(f"  {f.name:<66} {value:>10}  {f.target:<9} {f.verdict:<7} {f.note}", flush=True)


def write_spec(workdir: Path, spec: dict) -> Path:
    path = workdir / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def ablate(args: list[str], cwd: Path) -> tuple[float, str]:
    """Run the `ablate` CLI of this environment; (wall seconds, its output). Fails loudly."""
    exe = Path(sys.executable).parent / "ablate"
    began = time.perf_counter()
    done = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"ablate {' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def store(workdir: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")


def cell_runs(workdir: Path, experiment: str) -> list:
    """The sweep's cell runs, oldest first."""
    client = store(workdir)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], "tags.`ablate.role` = 'cell'", max_results=10_000,
                              order_by=["attributes.start_time ASC"])


def parent_metrics(workdir: Path, experiment: str) -> dict[str, float]:
    client = store(workdir)
    found = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([found.experiment_id], "tags.`ablate.role` = 'parent'")
    return parent.data.metrics


def cell_of(spec_path: Path, workdir: Path, id: str | None = None, **axis_values):
    """The planned cell of a spec with this id, or these axis values (and seed), as ablate plans it."""
    from ablate.prepare import prepare_sweep

    prepared = prepare_sweep(str(spec_path), [], workdir=workdir)
    for cell in prepared.cells:
        if (id is None or cell.id == id) and all(cell.axis_values.get(k) == v for k, v in axis_values.items()):
            return cell
    raise SystemExit(f"no cell with {id or axis_values} in {spec_path}")


@dataclass
class CellData:
    """One cell's tokenizer, tokenized training set and test rows, built by ablate's data layer."""

    tokenizer: object
    train_data: object
    test_rows: dict
    truncation: object


def cell_data(cell, cache_dir: Path, causal: bool = False) -> CellData:
    from ablate.cell import _tokenizer_for
    from ablate.data.build import build_test_dataset, build_train_dataset, eval_pairs, tokenize_dataset
    from ablate.data.clusters import category_to_cluster
    from ablate.data.encoding import tokenizer_truncation
    from ablate.data.select import select_tasks
    from ablate.data.sources import resolve_task_dir
    from ablate.data.library import TaskLibrary

    settings = cell.settings
    data, train = settings.data, settings.train
    library = TaskLibrary(resolve_task_dir(data.source, data.synthetic_seed, cache_dir),
                          index_dir=cache_dir / "index", persist_index=True)
    selection = select_tasks(library, data, settings.seed)
    tokenizer, tokenizer_id = _tokenizer_for(settings.model, library.root, cache_dir)
    truncation = tokenizer_truncation(tokenizer, train.max_source_length)
    rows = build_train_dataset(library, selection, data.instances_per_task, train.encoding, truncation, settings.seed)
    train_data = tokenize_dataset(rows, tokenizer, tokenizer_id, train.max_source_length, train.max_target_length,
                                  cache_dir, causal=causal)
    pairs = eval_pairs(library, selection.test_tasks, settings.eval.instances_per_task)
    test_rows = build_test_dataset(pairs, settings.test_encodings[0], truncation,
                                   category_to_cluster(settings.cluster_map)).to_dict()
    return CellData(tokenizer, train_data, test_rows, truncation)
