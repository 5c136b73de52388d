"""Seeded, nested selection of training tasks, training instances and test instances.

Nested: with the same seed, the 8-task set is inside the 16-task set and the 16-instance
sample inside the 32-instance sample, so points on one curve differ only in the ablated factor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from ablate.data.clusters import category_to_cluster
from ablate.data.tasks import Instance, Task, TaskLibrary
from ablate.errors import AblateError
from ablate.spec import DataSpec


@dataclass(frozen=True)
class TaskSelection:
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]


def seeded_order(names: Sequence[str], seed: int, salt: str = "") -> list[str]:
    """A permutation of `names` that depends only on the set of names and the seed."""
    ordered = sorted(names)
    random.Random(f"{seed}:{salt}").shuffle(ordered)
    return ordered


def tasks_in_clusters(library: TaskLibrary, names: Sequence[str], clusters: Sequence[str],
                      cluster_map: Mapping[str, Sequence[str]]) -> list[str]:
    owner = category_to_cluster(cluster_map)
    wanted = set(clusters)
    return [n for n in names if owner.get(library.category(n)) in wanted]


def select_tasks(library: TaskLibrary, data: DataSpec, seed: int) -> TaskSelection:
    """Training and test tasks of a cell.

    With held-out clusters (FLAN's setting) the test tasks are every task of those clusters and
    training draws from the other tasks; without, the split's train/test lists are used.
    """
    split, held_out_clusters, train_clusters = data.split, data.held_out_clusters, data.train_clusters
    num_train_tasks, cluster_map = data.num_train_tasks, data.clusters or {}
    if held_out_clusters:
        every_task = library.names()
        test = tasks_in_clusters(library, every_task, held_out_clusters, cluster_map)
        pool = [n for n in every_task if n not in set(test)]
    else:
        task_split = library.split(split)
        test, pool = list(task_split.test_tasks), list(task_split.train_tasks)
    if data.trains_nothing:
        pool = []
    elif train_clusters is not None:
        pool = tasks_in_clusters(library, pool, train_clusters, cluster_map)
    elif held_out_clusters:
        owner = category_to_cluster(cluster_map)
        pool = [n for n in pool if owner.get(library.category(n)) not in set(held_out_clusters)]
    train = seeded_order(pool, seed, "tasks")
    if num_train_tasks is not None and not data.trains_nothing:
        if num_train_tasks > len(train):
            raise AblateError(f"asks for {num_train_tasks} training tasks, but only {len(train)} match "
                              "the split and clusters.", field="data.num_train_tasks",
                              fix=f"use at most {len(train)}, or train on more clusters.")
        train = train[:num_train_tasks]
    if not train and not data.trains_nothing:
        raise AblateError("no training tasks match the split and clusters.", field="data.train_clusters",
                          fix="choose clusters whose categories have tasks in the training split.")
    if not test:
        raise AblateError("no test tasks match the split and held-out clusters.", field="data.held_out_clusters",
                          fix="choose held-out clusters whose categories have tasks, or use the split's test tasks.")
    return TaskSelection(train_tasks=tuple(train), test_tasks=tuple(sorted(test)))


def check_sample_size(task_name: str, available: int, count: int) -> None:
    if count > available:
        raise AblateError(f"asks for {count} instances of task '{task_name}', which has {available}.",
                          field="data.instances_per_task", fix=f"use at most {available} instances per task.")


def sample_positions(task_name: str, available: int, count: int, seed: int) -> list[int]:
    """Positions of the first `count` instances of a seeded permutation (nested across counts)."""
    check_sample_size(task_name, available, count)
    order = list(range(available))
    random.Random(f"{seed}:instances:{task_name}").shuffle(order)
    return order[:count]


def sample_instances(task: Task, count: int, seed: int) -> list[Instance]:
    """The first `count` instances of a seeded permutation (nested across counts)."""
    return [task.instances[i] for i in sample_positions(task.name, len(task.instances), count, seed)]


def eval_positions(available: int, count: int) -> list[int]:
    """The official evaluation set: the first `count` (100) instances of a test task."""
    return list(range(min(available, count)))


def eval_instances(task: Task, count: int) -> list[Instance]:
    return [task.instances[i] for i in eval_positions(len(task.instances), count)]
