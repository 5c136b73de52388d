"""Seeded, nested selection of tasks and instances."""

import pytest

from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.data.select import eval_instances, sample_instances, select_tasks
from ablate.data.tasks import TaskLibrary
from ablate.errors import AblateError
from ablate.spec import DataSpec


@pytest.fixture(scope="module")
def library(synthetic_dir):
    return TaskLibrary(synthetic_dir)


def _select(library, seed=0, cluster_map=DEFAULT_CLUSTERS, **overrides):
    data = DataSpec(source="synthetic", instances_per_task=8, clusters={k: list(v) for k, v in cluster_map.items()},
                    **overrides)
    return select_tasks(library, data, seed)


def test_task_subsets_are_nested_and_seeded(library):
    sizes = [1, 2, 4, 8, 16]
    chosen = [set(_select(library, num_train_tasks=n).train_tasks) for n in sizes]
    assert all(small < large for small, large in zip(chosen, chosen[1:]))
    assert _select(library, num_train_tasks=8) == _select(library, num_train_tasks=8)
    assert set(_select(library, num_train_tasks=8, seed=1).train_tasks) != chosen[3]


def test_instance_samples_are_nested(library):
    task = library.get(library.names()[0])
    samples = [[i.id for i in sample_instances(task, n, seed=0)] for n in (16, 32, 64)]
    assert samples[0] == samples[1][:16] and samples[1] == samples[2][:32]
    assert samples[0] != [i.id for i in sample_instances(task, 16, seed=1)]
    with pytest.raises(AblateError, match="has 400"):
        sample_instances(task, 401, seed=0)


def test_eval_instances_are_the_first_n(library):
    task = library.get(library.names()[0])
    assert [i.id for i in eval_instances(task, 100)] == [i.id for i in task.instances[:100]]


def test_held_out_clusters_are_never_trained_on(library):
    selection = _select(library, held_out_clusters=["nli"])
    held_out = {library.get(n).category for n in selection.test_tasks}
    trained = {library.get(n).category for n in selection.train_tasks}
    assert held_out == {"Textual Entailment"} and "Textual Entailment" not in trained
    restricted = _select(library, held_out_clusters=["nli"], train_clusters=["program_execution", "translation"])
    assert {library.get(n).category for n in restricted.train_tasks} == {"Program Execution", "Translation"}


def test_too_many_tasks_is_an_error(library):
    with pytest.raises(AblateError, match="num_train_tasks"):
        _select(library, num_train_tasks=500)


def test_an_untuned_cell_selects_no_training_task_but_the_same_test_tasks(library):
    tuned = _select(library, held_out_clusters=["nli"])
    for untuned in (_select(library, held_out_clusters=["nli"], num_train_tasks=0),
                    _select(library, held_out_clusters=["nli"], train_clusters=[])):
        assert untuned.train_tasks == () and untuned.test_tasks == tuned.test_tasks
