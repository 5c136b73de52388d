"""The task index: built once per task directory (by a sweep), reused by later sweeps, cells,
`validate` and `plan`; rebuilt when the directory changes; a broken task file is an error only
where the task is used. And a tiny sweep on a generated many-task directory named by a relative
`data.source`."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ablate.data.index import load_index
from ablate.data.select import select_tasks
from ablate.data.synthetic import write_suite
from ablate.data.library import TaskLibrary
from ablate.data.tasks import fingerprint_task_dir
from ablate.errors import AblateError
from ablate.spec import DataSpec
from tests.conftest import ablate_cli


def many_tasks(folder: Path, copies: int) -> Path:
    """The synthetic suite with every task copied `copies` times (same categories, new names):
    a task directory with many files, like a SuperNI release."""
    base = folder / "base"
    write_suite(base, seed=0)
    many = folder / "many"
    (many / "tasks").mkdir(parents=True)
    (many / "splits" / "default").mkdir(parents=True)
    train, test = [], []
    split = {k: set((base / "splits" / "default" / f"{k}_tasks.txt").read_text().split()) for k in ("train", "test")}
    for path in sorted((base / "tasks").glob("*.json")):
        for i in range(copies):
            name = f"{path.stem}_copy{i}"
            shutil.copy(path, many / "tasks" / f"{name}.json")
            (train if path.stem in split["train"] else test if path.stem in split["test"] else []).append(name)
    (many / "splits" / "default" / "train_tasks.txt").write_text("\n".join(train) + "\n")
    (many / "splits" / "default" / "test_tasks.txt").write_text("\n".join(test) + "\n")
    shutil.copy(base / "tokenizer.json", many / "tokenizer.json")
    return many


def test_the_index_is_saved_once_read_back_and_rebuilt_when_the_directory_changes(tmp_path):
    many = many_tasks(tmp_path, 3)
    index_dir = tmp_path / "index"
    library = TaskLibrary(many, index_dir=index_dir, persist_index=True)
    name = library.names()[0]
    assert library.category(name) == json.loads((many / "tasks" / f"{name}.json").read_text())["Categories"][0]
    assert library.instance_count(name) == 400
    saved = list(index_dir.glob("*.json"))
    assert len(saved) == 1 and saved[0].stem == fingerprint_task_dir(many)
    stamp = saved[0].stat().st_mtime_ns
    again = TaskLibrary(many, index_dir=index_dir, persist_index=True)
    assert again.index == library.index and saved[0].stat().st_mtime_ns == stamp, "read back, not rebuilt"
    # validate / plan read an existing index but never write one
    TaskLibrary(many, index_dir=tmp_path / "elsewhere").index
    assert not (tmp_path / "elsewhere").exists()
    # a changed directory has another fingerprint: a new index
    task = json.loads((many / "tasks" / f"{name}.json").read_text())
    task["Instances"] = task["Instances"][:10]
    (many / "tasks" / f"{name}.json").write_text(json.dumps(task))
    changed = TaskLibrary(many, index_dir=index_dir, persist_index=True)
    assert changed.instance_count(name) == 10 and len(list(index_dir.glob("*.json"))) == 2


def test_a_broken_task_file_is_an_error_only_where_it_is_used(tmp_path):
    many = many_tasks(tmp_path, 1)
    broken = sorted((many / "tasks").glob("*.json"))[0]
    broken.write_text('{"Definition": ["x"], "Instances": [')
    library = TaskLibrary(many)
    with pytest.raises(AblateError, match="invalid JSON") as raised:
        library.category(broken.stem)
    assert raised.value.file == str(broken)
    other = sorted((many / "tasks").glob("*.json"))[1].stem
    assert library.instance_count(other) == 400


def test_selection_reads_categories_from_the_index_not_the_task_files(tmp_path, monkeypatch):
    many = many_tasks(tmp_path, 2)
    library = TaskLibrary(many, index_dir=tmp_path / "index", persist_index=True)
    library.index  # built here, reading every file once
    import ablate.data.tasks as tasks

    monkeypatch.setattr(tasks, "load_task", lambda path: pytest.fail(f"read {path} to select tasks"))
    categories = {entry.category for entry in library.index.values()}
    held = sorted(categories)[0]
    data = DataSpec(source=str(many), instances_per_task=8, held_out_clusters=["held"],
                    clusters={"held": [held], "rest": sorted(categories - {held})})
    selection = select_tasks(TaskLibrary(many, index_dir=tmp_path / "index"), data, seed=0)
    assert selection.test_tasks == tuple(sorted(n for n, e in library.index.items() if e.category == held))
    assert selection.train_tasks and not set(selection.train_tasks) & set(selection.test_tasks)


def test_the_index_holds_a_summary_of_every_task(tmp_path):
    many = many_tasks(tmp_path, 2)
    names = sorted(p.stem for p in (many / "tasks").glob("*.json"))
    entries = load_index(many, names, fingerprint_task_dir(many), None, False)
    assert set(entries) == set(names) and all(e.instances == 400 and len(e.sha256) == 64 for e in entries.values())


@pytest.mark.slow
def test_a_sweep_on_a_many_task_directory_named_relatively_builds_the_index_once(tmp_path):
    many_tasks(tmp_path, 8)  # 296 task files
    spec = {"name": "many", "data": {"source": "./many", "instances_per_task": 4, "num_train_tasks": 6},
            "model": "t5-nano",
            "train": {"steps": 4, "batch_size": 4, "learning_rate": 1.0e-3, "max_source_length": 64,
                      "max_target_length": 8, "encoding": "def", "log_every": 2},
            "eval": {"instances_per_task": 2, "max_new_tokens": 4}, "seeds": [0]}
    (tmp_path / "many.yaml").write_text(yaml.safe_dump(spec))
    first = ablate_cli("sweep", "many.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    saved = list((tmp_path / "ablate_runs" / "many" / "cache" / "index").glob("*.json"))
    assert len(saved) == 1, "one index for the directory, shared by the driver and the cell"
    stamp = (saved[0].stat().st_ino, saved[0].stat().st_mtime_ns)
    for command in (["validate", "many.yaml"], ["plan", "many.yaml"], ["sweep", "many.yaml", "--set", "seeds=[1]"]):
        result = ablate_cli(*command, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (saved[0].stat().st_ino, saved[0].stat().st_mtime_ns) == stamp, "reused by validate, plan and new cells"
    assert len(list(saved[0].parent.glob("*.json"))) == 1


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_save_the_index_so_the_next_one_reads_no_task_file(tmp_path, monkeypatch, capsys, command):
    import ablate.data.index as index_module
    from ablate.cli import main

    many_tasks(tmp_path, 2)
    spec = {"name": "many", "data": {"source": "./many", "instances_per_task": 4, "num_train_tasks": 6},
            "model": "t5-nano",
            "train": {"steps": 4, "batch_size": 4, "learning_rate": 1.0e-3, "max_source_length": 64,
                      "max_target_length": 8, "encoding": "def"}, "seeds": [0]}
    (tmp_path / "many.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    assert main([command, "many.yaml"]) == 0, capsys.readouterr().err
    saved = list((tmp_path / "ablate_runs" / "many" / "cache" / "index").glob("*.json"))
    assert [p.stem for p in saved] == [fingerprint_task_dir(tmp_path / "many")], "the file a sweep writes"
    assert set(json.loads(saved[0].read_text())["tasks"]) == set(TaskLibrary(tmp_path / "many").names())

    def no_task_file_read(path, name):
        raise AssertionError(f"{path} read again: the saved index was not used")

    monkeypatch.setattr(index_module, "_index_entry", no_task_file_read)
    for again in ("validate", "plan"):
        assert main([again, "many.yaml"]) == 0, capsys.readouterr().err


def test_a_task_file_that_is_a_fifo_is_an_entry_error_not_a_hang(tmp_path):
    import os

    many = many_tasks(tmp_path, 1)
    fifo = min((many / "tasks").glob("*.json"))
    fifo.unlink()
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    library = TaskLibrary(many, index_dir=tmp_path / "index", persist_index=True)
    with pytest.raises(AblateError, match=r"named pipe \(FIFO\)") as raised:
        library.instance_count(fifo.stem)
    assert raised.value.file == str(fifo)
    assert len(library.index) == len(library.names()), "every other task indexed"
