"""A cell's task data, opened one way for every reader: the cell itself, the sweep's baselines
and `ablate evaluate`-style scorers see the same library, selection and test set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ablate.data.build import eval_pairs
from ablate.data.clusters import category_to_cluster
from ablate.data.options import instance_options
from ablate.data.select import TaskSelection, select_tasks
from ablate.data.sources import resolve_task_dir
from ablate.data.library import TaskLibrary
from ablate.data.tasks import Instance, Task


def open_library(source: str, synthetic_seed: int, cache_dir: Path) -> TaskLibrary:
    """The task library of a data source, reading (and saving) its index in the cache."""
    return TaskLibrary(resolve_task_dir(source, synthetic_seed, cache_dir), index_dir=cache_dir / "index",
                       persist_index=True)


@dataclass(frozen=True)
class CellData:
    library: TaskLibrary
    selection: TaskSelection  # the training and test tasks
    test_pairs: list[tuple[Task, Instance]]  # the evaluated instances of the test tasks
    cluster_of: dict[str, str]  # category -> cluster
    test_options: list[list[str] | None]  # each test pair's answer options (ablate.data.options), or None


def open_cell_data(settings, cache_dir: Path) -> CellData:
    """The library, task selection and test set of a cell's settings (`ablate.plan.CellSettings`)."""
    data = settings.data
    library = open_library(data.source, data.synthetic_seed, cache_dir)
    selection = select_tasks(library, data, settings.seed)
    pairs = eval_pairs(library, selection.test_tasks, settings.eval.instances_per_task)
    label_sets = {name: library.options(name, data.max_options) for name in selection.test_tasks}
    options = [instance_options(instance, label_sets[task.name]) for task, instance in pairs]
    return CellData(library, selection, pairs, category_to_cluster(settings.cluster_map), options)
