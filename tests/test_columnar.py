"""The columnar task store (ablate/data/columnar.py): built with the index, read by position
instead of the JSON, identical to what the JSON gives; converted once per file content; a
conversion killed midway leaves nothing a reader takes for complete."""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

import ablate.data.library
from ablate.data.build import build_train_dataset, eval_pairs
from ablate.data.columnar import store_dir, store_path
from ablate.data.library import TaskLibrary
from ablate.data.select import eval_positions, sample_positions, select_tasks
from ablate.data.synthetic import write_suite
from ablate.data.tasks import load_task
from ablate.spec import DataSpec
from tests.conftest import FIXTURES


def json_forbidden(monkeypatch) -> None:
    """From here on a library that reads a task's JSON fails the test."""
    def refuse(path, only=None):
        raise AssertionError(f"parsed the JSON of {path}")

    monkeypatch.setattr(ablate.data.library, "load_task", refuse)


@pytest.mark.parametrize("fixture", ["superni_shaped", "rank_tasks", "tasks", "synthetic"])
def test_rows_from_the_store_equal_those_parsed_from_json(tmp_path, monkeypatch, fixture):
    """Instances (ids given and made up, references, options), definitions, positive and negative
    examples (explanations or none), categories and other keys: the same objects, same order."""
    task_dir = write_suite(tmp_path / "suite", seed=0) if fixture == "synthetic" else FIXTURES / fixture
    library = TaskLibrary(task_dir, index_dir=tmp_path / "index", persist_index=True)
    library.index
    names = library.names()
    assert len(list(store_dir(tmp_path / "index").glob("*.arrow"))) == len(names), "every task converted"
    expected = {}
    for name in names:
        count = library.instance_count(name)
        for positions in (sample_positions(name, count, min(count, 7), seed=3), eval_positions(count, 5), []):
            expected[name, tuple(positions)] = load_task(task_dir / "tasks" / f"{name}.json", only=positions)
    json_forbidden(monkeypatch)
    for (name, positions), task in expected.items():
        assert library.subset(name, positions) == task, (name, positions)
    # the store holds what matters here: ids made up from the position, options, examples, metadata
    if fixture == "superni_shaped":
        task = library.subset("task1001_wordgen_rhymes", [3, 0])
        assert [i.id for i in task.instances] == ["task1001_wordgen_rhymes-3", "task1001_wordgen_rhymes-0"]
        assert task.positive_examples and task.negative_examples and task.metadata["Source"]
    if fixture == "rank_tasks":
        assert all(i.options for i in library.subset("task951_rank_explicit_options", [0, 1]).instances)


def test_a_cells_data_from_the_store_equals_that_from_json(tmp_path, monkeypatch):
    """The sampled training rows and the evaluated test pairs of a cell are the same instances in
    the same order: the cell ids and numbers do not move."""
    suite = write_suite(tmp_path / "suite", seed=0)
    data = DataSpec(source=str(suite), instances_per_task=9, num_train_tasks=12)

    def cell_rows(library):
        selection = select_tasks(library, data, seed=1)
        train = build_train_dataset(library, selection, 9, "def+pos2", None, seed=1, options_max=8).to_list()
        return selection, train, eval_pairs(library, selection.test_tasks, 6)

    from_json = cell_rows(TaskLibrary(suite))
    stored = TaskLibrary(suite, index_dir=tmp_path / "index", persist_index=True)
    stored.index
    json_forbidden(monkeypatch)
    assert cell_rows(stored) == from_json
    assert len(from_json[1]) == 12 * 9


def test_a_changed_task_file_is_converted_again_and_an_unchanged_one_is_not(tmp_path):
    suite = write_suite(tmp_path / "suite", seed=0)
    index_dir = tmp_path / "index"
    library = TaskLibrary(suite, index_dir=index_dir, persist_index=True)
    library.index
    store = store_dir(index_dir)
    stamps = {p.name: p.stat().st_mtime_ns for p in store.glob("*.arrow")}
    changed = library.names()[0]
    path = suite / "tasks" / f"{changed}.json"
    task = json.loads(path.read_text())
    task["Instances"].append({"id": "added-1", "input": "a new input", "output": ["a new output"]})
    path.write_text(json.dumps(task))

    again = TaskLibrary(suite, index_dir=index_dir, persist_index=True)
    old, new = library.index[changed].sha256, again.index[changed].sha256
    assert old != new and store_path(store, new).is_file(), "the changed file is converted again"
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("*.arrow") if p.name in stamps} == stamps, \
        "the unchanged files are not"
    assert again.subset(changed, [400]).instances[0].id == "added-1"

    # A store removed (or a cache folder from before the store) is refilled once the index is read.
    store_path(store, new).unlink()
    TaskLibrary(suite, index_dir=index_dir, persist_index=True).index
    assert store_path(store, new).is_file()
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("*.arrow") if p.name in stamps} == stamps
    # validate and plan (not persisting) read the store but never write it
    store_path(store, new).unlink()
    reader = TaskLibrary(suite, index_dir=index_dir)
    assert reader.subset(changed, [400]).instances[0].id == "added-1" and not store_path(store, new).exists()


KILLED_CONVERSION = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import ablate.data.columnar as columnar
    from ablate.data.library import TaskLibrary

    def die(scratch, target):  # the scratch file half written, the process killed before the rename
        size = os.path.getsize(scratch)
        with open(scratch, "r+b") as f:
            f.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    columnar.os.replace = die
    TaskLibrary(sys.argv[1], index_dir=Path(sys.argv[2]), persist_index=True).index
""")


def test_a_conversion_killed_midway_leaves_nothing_read_as_complete(tmp_path):
    suite = write_suite(tmp_path / "suite", seed=0)
    index_dir = tmp_path / "index"
    done = subprocess.run([sys.executable, "-c", KILLED_CONVERSION, str(suite), str(index_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    store = store_dir(index_dir)
    assert list(store.glob("*.arrow.tmp*")) and not list(store.glob("*.arrow")), "only the scratch file is left"
    assert not list(index_dir.glob("*.json")), "no index saved either"

    library = TaskLibrary(suite, index_dir=index_dir, persist_index=True)
    name = library.names()[0]
    assert store_path(store, library.index[name].sha256).is_file(), "converted afresh"
    assert library.subset(name, [4, 2]) == load_task(suite / "tasks" / f"{name}.json", only=[4, 2])


def test_a_damaged_store_file_is_not_read(tmp_path):
    """A store file cut short from outside ablate: the task is read from its JSON instead."""
    suite = write_suite(tmp_path / "suite", seed=0)
    library = TaskLibrary(suite, index_dir=tmp_path / "index", persist_index=True)
    name = library.names()[0]
    path = store_path(store_dir(tmp_path / "index"), library.index[name].sha256)
    path.write_bytes(path.read_bytes()[:100])
    assert library.subset(name, [1]) == load_task(suite / "tasks" / f"{name}.json", only=[1])


def test_the_same_content_under_two_names_is_stored_once(tmp_path):
    suite = write_suite(tmp_path / "suite", seed=0)
    name = min(p.stem for p in (suite / "tasks").glob("*.json"))
    raw = json.loads((suite / "tasks" / f"{name}.json").read_text())
    for instance in raw["Instances"]:
        del instance["id"]
    for copy in ("task_a", "task_b"):
        (suite / "tasks" / f"{copy}.json").write_text(json.dumps(raw))
    library = TaskLibrary(suite, index_dir=tmp_path / "index", persist_index=True)
    assert library.index["task_a"].sha256 == library.index["task_b"].sha256
    assert [i.id for i in library.subset("task_b", [2]).instances] == ["task_b-2"]
    assert len(list(store_dir(tmp_path / "index").glob("*.arrow"))) == len(library.names()) - 1
    shutil.rmtree(suite)


def test_a_task_file_edited_to_the_same_size_is_read_from_the_file_not_the_stale_store(tmp_path):
    """The fingerprint holds file names and sizes: a label fixed in place keeps both, and the
    stored rows are older than the file, so the cell gets the file's current content."""
    import os

    suite = write_suite(tmp_path / "suite", seed=0)
    library = TaskLibrary(suite, index_dir=tmp_path / "index", persist_index=True)
    name = library.names()[0]
    path = suite / "tasks" / f"{name}.json"
    text, instance = path.read_text(), json.loads(path.read_text())["Instances"][1]
    old = instance["output"][0]
    at = text.index(json.dumps(old), text.index(json.dumps(instance["id"])))  # instance 1's answer, in place
    size = path.stat().st_size
    path.write_text(text[:at] + json.dumps("Z" * len(old)) + text[at + len(json.dumps(old)):])
    assert path.stat().st_size == size
    stored = store_path(store_dir(tmp_path / "index"), library.index[name].sha256)
    os.utime(path, ns=(stored.stat().st_mtime_ns + 10**9,) * 2)  # edited after the rows were stored
    assert library.subset(name, [1]).instances[0].references[0] == "Z" * len(old)


def test_a_store_that_cannot_be_written_only_costs_speed(tmp_path, monkeypatch):
    import ablate.data.columnar

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ablate.data.columnar, "write_task", full_disk)
    suite = write_suite(tmp_path / "suite", seed=0)
    library = TaskLibrary(suite, index_dir=tmp_path / "index", persist_index=True)
    name = library.names()[0]
    assert library.index[name].error is None and not list(store_dir(tmp_path / "index").glob("*.arrow"))
    assert library.subset(name, [1]) == load_task(suite / "tasks" / f"{name}.json", only=[1])
