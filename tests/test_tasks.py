"""Loading SuperNI task files and splits; broken files give errors naming the file and field."""

import json

import pytest

from ablate.data.library import TaskLibrary
from ablate.data.tasks import fingerprint_task_dir, load_split, load_task
from ablate.errors import AblateError


def test_loads_fields_metadata_and_several_references(fixture_tasks):
    task = load_task(fixture_tasks / "tasks" / "task902_edge_missing_explanations.json")
    assert task.name == "task902_edge_missing_explanations"
    assert task.category == "Title Generation" and task.categories[1] == "Summarization"
    assert task.instances[0].references == ("Rivers flow", "Rivers reach sea", "water flows")
    assert task.positive_examples[0].explanation is None
    weather = load_task(fixture_tasks / "tasks" / "task901_edge_no_final_punct.json")
    assert weather.metadata["Domains"] == ["Weather"]
    assert weather.positive_examples[1].explanation == ""


def test_split_lists_train_and_test_tasks(fixture_tasks):
    split = load_split(fixture_tasks, "default")
    assert split.train_tasks == ("task903_edge_punctuated_outputs",)
    assert split.test_tasks == ("task901_edge_no_final_punct", "task902_edge_missing_explanations")


def _write(tmp_path, name, content):
    (tmp_path / "tasks").mkdir(exist_ok=True)
    path = tmp_path / "tasks" / f"{name}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


GOOD = {"Definition": ["Do it."], "Positive Examples": [], "Negative Examples": [],
        "Instances": [{"id": "x-1", "input": "a", "output": ["b"]}], "Categories": ["Misc."]}


@pytest.mark.parametrize("content, field, says", [
    ('{"Definition": [', "line 1", "invalid JSON"),
    ({k: v for k, v in GOOD.items() if k != "Definition"}, "Definition", "missing"),
    ({**GOOD, "Instances": [{"id": "x-1", "input": "a", "output": []}]}, "Instances[0].output", "empty"),
    ({**GOOD, "Instances": [{"id": "x-1", "input": "a"}]}, "Instances[0]", "instance 0 has no 'output'"),
    ({**GOOD, "Instances": [GOOD["Instances"][0], {"id": "x-2"}]}, "Instances[1]", "has no 'input' and no 'output'"),
    ({**GOOD, "Instances": [{"id": "x-1", "input": "a", "output": 5}]}, "Instances[0].output",
     "expected a list of reference strings, got int"),
    ({**GOOD, "Instances": [GOOD["Instances"][0], GOOD["Instances"][0]]}, "Instances[1].id", "appears twice"),
    ({**GOOD, "Categories": [" "]}, "Categories", "non-empty list"),
    ({**GOOD, "Categories": []}, "Categories", "non-empty list"),
    ({**GOOD, "Positive Examples": [{"input": "a"}]}, "Positive Examples[0]", "needs 'input' and 'output'"),
    ({**GOOD, "Definition": [3]}, "Definition", "expected a string"),
])
def test_broken_task_files_name_file_and_field(tmp_path, content, field, says):
    path = _write(tmp_path, "task_bad", content)
    with pytest.raises(AblateError) as error:
        load_task(path)
    message = str(error.value)
    assert str(path) in message and f"field '{field}" in message and says in message and "Fix:" in message


def test_instances_without_an_id_are_named_after_the_task_and_their_index(tmp_path):
    older = {**GOOD, "Instances": [{"input": "a", "output": ["b"]}, {"id": "kept", "input": "c", "output": "d"},
                                   {"input": "e", "output": ["f", "g"]}]}
    task = load_task(_write(tmp_path, "task77_old_release", older))
    assert [i.id for i in task.instances] == ["task77_old_release-0", "kept", "task77_old_release-2"]
    assert task.instances[2].references == ("f", "g")


def test_split_naming_a_missing_task_is_an_error(tmp_path):
    _write(tmp_path, "task_ok", GOOD)
    split = tmp_path / "splits" / "default"
    split.mkdir(parents=True)
    (split / "train_tasks.txt").write_text("task_ok\ntask_gone\n")
    (split / "test_tasks.txt").write_text("task_ok\n")
    with pytest.raises(AblateError, match="task_gone"):
        load_split(tmp_path, "default")
    with pytest.raises(AblateError, match="split 'other' does not exist.*default"):
        load_split(tmp_path, "other")


def test_missing_task_directory_is_an_error(tmp_path):
    with pytest.raises(AblateError, match="no 'tasks/' folder"):
        TaskLibrary(tmp_path / "nowhere")


def test_fingerprint_depends_on_content_not_location(tmp_path, fixture_tasks):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fixture_tasks, copy)
    assert fingerprint_task_dir(copy) == fingerprint_task_dir(fixture_tasks)
    (copy / "splits" / "default" / "test_tasks.txt").write_text("task901_edge_no_final_punct\n")
    assert fingerprint_task_dir(copy) != fingerprint_task_dir(fixture_tasks)
