"""Seeded, nested selection of training tasks, training instances and test instances.

Nested: with the same seed, the 8-task set is inside the 16-task set and the 16-instance
sample inside the 32-instance sample, so points on one curve differ only in the ablated factor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from ablate.data.clusters import category_to_cluster
from ablate.data.library import TaskLibrary
from ablate.data.tasks import Instance, Task
from ablate.errors import AblateError
from ablate.spec import DataSpec

# The selection rules that remove tasks, in the order they apply; `TaskSelection.removed` counts
# each (a plan prints them, a cell logs them as `tasks_removed/<rule>` metrics).
UNLISTED = "unlisted"  # task files in neither list of the split (e.g. excluded_tasks.txt): never used
SPLIT_TEST = "split_test"  # held-out mode: the split's test tasks outside the held-out clusters
HELD_OUT = "held_out"  # held-out mode: the split's training tasks of held-out clusters (tested instead)
OTHER_CLUSTERS = "other_clusters"  # training tasks outside data.train_clusters
SUBSET = "subset"  # training tasks left out by data.num_train_tasks
RULES = (UNLISTED, SPLIT_TEST, HELD_OUT, OTHER_CLUSTERS, SUBSET)
RULE_TEXT = {UNLISTED: "task(s) not in split '{split}' (never used)",
             SPLIT_TEST: "test task(s) of split '{split}' outside the held-out clusters (not used)",
             HELD_OUT: "training task(s) of split '{split}' in the held-out clusters (tested, not trained on)",
             OTHER_CLUSTERS: "training task(s) outside data.train_clusters",
             SUBSET: "training task(s) beyond data.num_train_tasks"}


@dataclass(frozen=True)
class TaskSelection:
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]
    removed: tuple[tuple[str, int], ...] = ()  # (rule, number of tasks it removed), rules in RULES order

    def removed_text(self, split: str, rules: Sequence[str] = RULES) -> str:
        """"1 task(s) not in split 'default' (never used); 2 test task(s) ..." for the rules given."""
        counts = dict(self.removed)
        return "; ".join(f"{counts[r]} {RULE_TEXT[r].format(split=split)}" for r in rules if counts.get(r))


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
    """Training and test tasks of a cell; only tasks the split lists are ever used.

    Without held-out clusters, the split's test tasks are tested and training draws from its
    training tasks. With held-out clusters (FLAN's setting), every task of those clusters that
    the split lists (training or test list) is tested: no task of a held-out cluster is trained
    on, so each is unseen; training draws from the split's training tasks of the other
    clusters, and the split's other test tasks are not used at all. `removed` counts the tasks
    each rule took out.
    """
    split, held_out_clusters, train_clusters = data.split, data.held_out_clusters, data.train_clusters
    num_train_tasks, cluster_map = data.num_train_tasks, data.clusters or {}
    task_split = library.split(split)
    listed = set(task_split.train_tasks) | set(task_split.test_tasks)
    removed = {UNLISTED: sum(1 for n in library.names() if n not in listed)}
    if held_out_clusters:
        test = tasks_in_clusters(library, [*task_split.train_tasks, *task_split.test_tasks], held_out_clusters,
                                 cluster_map)
        pool = [n for n in task_split.train_tasks if n not in set(test)]
        removed[SPLIT_TEST] = len(task_split.test_tasks) - len(set(test) & set(task_split.test_tasks))
        removed[HELD_OUT] = len(task_split.train_tasks) - len(pool)
    else:
        test, pool = list(task_split.test_tasks), list(task_split.train_tasks)
    if data.trains_nothing:
        pool = []
    elif train_clusters is not None:
        kept = tasks_in_clusters(library, pool, train_clusters, cluster_map)
        removed[OTHER_CLUSTERS] = len(pool) - len(kept)
        pool = kept
    train = seeded_order(pool, seed, "tasks")
    if num_train_tasks is not None and not data.trains_nothing:
        if num_train_tasks > len(train):
            raise AblateError(f"asks for {num_train_tasks} training tasks, but only {len(train)} match "
                              "the split and clusters.", field="data.num_train_tasks",
                              fix=f"use at most {len(train)}, or train on more clusters.")
        removed[SUBSET] = len(train) - num_train_tasks
        train = train[:num_train_tasks]
    if not train and not data.trains_nothing:
        raise AblateError("no training tasks match the split and clusters.", field="data.train_clusters",
                          fix="choose clusters whose categories have tasks in the training split.")
    if not test:
        raise AblateError("no test tasks match the split and held-out clusters.", field="data.held_out_clusters",
                          fix="choose held-out clusters whose categories have tasks the split lists, or use the "
                              "split's test tasks.")
    return TaskSelection(train_tasks=tuple(train), test_tasks=tuple(sorted(test)),
                         removed=tuple((rule, removed[rule]) for rule in RULES if rule in removed))


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
