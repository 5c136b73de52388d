"""Seeded, nested selection of tasks and instances."""

import pytest

from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.data.select import eval_instances, sample_instances, select_tasks
from ablate.data.library import TaskLibrary
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


SHAPED = __import__("tests.conftest", fromlist=["FIXTURES"]).FIXTURES / "superni_shaped"


def _shaped(**overrides):
    library = TaskLibrary(SHAPED)
    data = DataSpec(source=str(SHAPED), instances_per_task=4,
                    clusters={k: list(v) for k, v in DEFAULT_CLUSTERS.items()}, **overrides)
    return library, select_tasks(library, data, seed=0)


def test_held_out_clusters_train_only_on_the_splits_training_tasks():
    """The release's shape: a split with training tasks, test tasks and an excluded (unlisted) task.
    Holding out nli and closed_book_qa tests every task of theirs the split lists (here one test
    task each and one training task of closed_book_qa); training draws from the split's other
    training tasks only; the split's other test tasks and the unlisted task are never used."""
    library, selection = _shaped(held_out_clusters=["nli", "closed_book_qa"])
    split = library.split("default")
    excluded = "task1009_fr_review_sentiment_excluded"
    assert excluded in library.names() and excluded not in split.train_tasks + split.test_tasks
    assert set(selection.test_tasks) == {"task1002_wiki_de_question_answering", "task1003_jp_entailment",
                                         "task1010_trivia_answer_verification"}
    assert set(selection.train_tasks) == set(split.train_tasks) - {"task1010_trivia_answer_verification"}
    used = set(selection.train_tasks) | set(selection.test_tasks)
    assert excluded not in used and not used & {"task1001_wordgen_rhymes", "task1005_custom_übersetzung"}
    assert dict(selection.removed) == {"unlisted": 1, "split_test": 2, "held_out": 1}
    assert selection.removed_text("default") == (
        "1 task(s) not in split 'default' (never used); 2 test task(s) of split 'default' outside the held-out "
        "clusters (not used); 1 training task(s) of split 'default' in the held-out clusters (tested, not trained on)")


def test_the_split_mode_never_uses_an_unlisted_task_and_counts_each_rule():
    library, selection = _shaped(train_clusters=["sentiment", "summarization", "misc", "closed_book_qa"],
                                 num_train_tasks=2)
    assert set(selection.test_tasks) == set(library.split("default").test_tasks)
    assert len(selection.train_tasks) == 2 and "task1009_fr_review_sentiment_excluded" not in selection.train_tasks
    assert dict(selection.removed) == {"unlisted": 1, "other_clusters": 1, "subset": 2}
    every = _shaped(held_out_clusters=["sentiment"])[1]
    assert every.train_tasks and "task1009_fr_review_sentiment_excluded" not in every.test_tasks, \
        "an excluded task of a held-out cluster is not tested either"
    assert every.test_tasks == ("task1007_review_sentiment",)


def test_a_training_cluster_with_no_task_in_the_training_list_is_a_warning(tmp_path):
    """nli's only task is a test task of the split: training on it adds nothing (before issue 24
    the test task itself was trained on)."""
    import yaml

    from ablate.prepare import prepare_sweep

    spec = {"name": "w", "data": {"source": str(SHAPED), "instances_per_task": 2, "held_out_clusters": ["closed_book_qa"]},
            "model": "t5-nano", "train": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_source_length": 32,
                                          "max_target_length": 4, "encoding": "def"},
            "seeds": [0], "axes": {"train_clusters": {"cumulative": ["sentiment", "nli"]}}}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(spec))
    prepared = prepare_sweep(str(tmp_path / "w.yaml"), [], output_dir=str(tmp_path / "out"))
    warned = [w for w in prepared.warnings if w.startswith("training cluster(s) nli have no task")]
    assert len(warned) == 1, prepared.warnings
    assert not any("sentiment" in w for w in prepared.warnings)
