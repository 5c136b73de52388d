"""Data sources and pretrained models through their real code paths, offline."""

import json

from ablate.data.sources import resolve_task_dir, source_fingerprint
from ablate.data.library import TaskLibrary


def test_hf_dataset_source_is_converted_to_a_task_directory(tmp_path):
    """`hf:<name>` goes through datasets.load_dataset; a local dataset folder stands in for the hub."""
    dataset = tmp_path / "superni_rows"
    dataset.mkdir()
    rows = {"train": [{"task_name": "task1_copy", "id": "t1-0", "definition": "Copy the input.", "inputs": "a b",
                       "targets": ["a b"], "category": "Paraphrasing"},
                      {"task_name": "task1_copy", "id": "t1-1", "definition": "Copy the input.", "inputs": "c",
                       "targets": ["c"], "category": "Paraphrasing"}],
            "test": [{"task_name": "task2_yes", "id": "t2-0", "definition": "Say yes.", "inputs": "x",
                      "targets": ["yes"], "category": "Textual Entailment"}]}
    for split, lines in rows.items():
        (dataset / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    source = f"hf:{dataset}"
    task_dir = resolve_task_dir(source, 0, tmp_path / "cache")
    library = TaskLibrary(task_dir)
    split = library.split("default")
    assert split.train_tasks == ("task1_copy",) and split.test_tasks == ("task2_yes",)
    task = library.get("task1_copy")
    assert task.definition == "Copy the input." and task.category == "Paraphrasing"
    assert [i.references for i in task.instances] == [("a b",), ("c",)]
    assert library.get("task2_yes").instances[0].references == ("yes",)
    assert resolve_task_dir(source, 0, tmp_path / "cache") == task_dir, "converted once, then cached"
    assert source_fingerprint(source, 0) != source_fingerprint("synthetic", 0)


def test_a_local_pretrained_model_folder_is_loaded_with_its_own_tokenizer(tmp_path, synthetic_dir):
    from ablate.cell import _tokenizer_for
    from ablate.data.tokenizer import as_hf_tokenizer
    from ablate.model import build_model, check_model_name

    tokenizer = as_hf_tokenizer(str(synthetic_dir / "tokenizer.json"))
    saved = build_model("t5-nano", len(tokenizer), seed=3)
    folder = tmp_path / "my-model"
    saved.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    check_model_name(str(folder))
    loaded_tokenizer, tokenizer_id = _tokenizer_for(str(folder), synthetic_dir, tmp_path / "cache")
    loaded = build_model(str(folder), len(loaded_tokenizer), seed=0)
    assert tokenizer_id == str(folder)
    assert loaded_tokenizer("dog red")["input_ids"] == tokenizer("dog red")["input_ids"]
    for key, value in saved.state_dict().items():
        assert (loaded.state_dict()[key] == value).all(), key


def test_a_superni_directory_gets_a_word_tokenizer_built_once_and_cached(tmp_path, fixture_tasks):
    from ablate.data.tokenizer import task_dir_tokenizer

    tokenizer, tokenizer_id = task_dir_tokenizer(fixture_tasks, tmp_path / "cache")
    cached = list((tmp_path / "cache" / "tokenizers").glob("*.json"))
    assert len(cached) == 1
    ids = tokenizer("Definition: say whether it mentions rain.")["input_ids"]
    assert tokenizer.unk_token_id not in ids and ids[-1] == tokenizer.eos_token_id
    again, again_id = task_dir_tokenizer(fixture_tasks, tmp_path / "cache")
    assert again_id == tokenizer_id and len(again) == len(tokenizer)


def test_hf_source_reads_a_dataset_saved_with_save_to_disk_in_the_superni_layout(tmp_path):
    """The SuperNI-on-HF layout (task_name, id, definition, inputs, targets, category), saved by
    `datasets` itself; an `hf:` source pointing at such a folder is read with load_from_disk."""
    from datasets import Dataset, DatasetDict

    def rows(task, category, n, prefix):
        return [{"task_name": task, "id": f"{task}-{i}", "definition": f"Do {task}.", "inputs": f"{prefix} {i}",
                 "targets": [f"out {i}", f"alt {i}"], "category": category} for i in range(n)]

    saved = tmp_path / "superni_hf"
    DatasetDict({"train": Dataset.from_list(rows("task10_a", "Text Generation -> Word Generation", 3, "a")),
                 "test": Dataset.from_list(rows("task20_b", "Question Answering", 2, "b"))}).save_to_disk(str(saved))
    task_dir = resolve_task_dir(f"hf:{saved}", 0, tmp_path / "cache")
    library = TaskLibrary(task_dir)
    split = library.split("default")
    assert split.train_tasks == ("task10_a",) and split.test_tasks == ("task20_b",)
    task = library.get("task10_a")
    assert task.category == "Text Generation -> Word Generation" and task.definition == "Do task10_a."
    assert [(i.id, i.input, i.references) for i in task.instances][0] == ("task10_a-0", "a 0", ("out 0", "alt 0"))
    moved = tmp_path / "elsewhere" / "superni_hf"
    moved.parent.mkdir()
    saved.rename(moved)
    assert source_fingerprint(f"hf:{moved}", 0) == source_fingerprint(f"hf:{saved}".replace(str(saved), str(moved)), 0)


def _save_release_rows(folder, tasks, with_examples=True):
    """A SuperNI-on-HF dataset written by `save_to_disk`: a train and a test split, rows carrying the
    task's demonstrations (as Tk-Instruct's own dataset script gives them)."""
    from datasets import Dataset, DatasetDict

    def rows(task, category):
        extra = {"positive_examples": [{"input": f"{task} in", "output": f"{task} out", "explanation": "because"},
                                       {"input": f"{task} in2", "output": f"{task} out2", "explanation": ""}],
                 "negative_examples": [{"input": f"{task} bad", "output": "no", "explanation": "wrong"}]} \
            if with_examples else {}
        return [{"task_name": task, "id": f"{task}-{i}", "definition": f"Do {task}.", "inputs": f"{task} {i}",
                 "targets": [f"out {i}"], "category": category, **extra} for i in range(4)]

    splits = {"train": [], "test": []}
    for task, (split, category) in tasks.items():
        splits[split] += rows(task, category)
    DatasetDict({k: Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(folder))


TASKS = {"task1_summary": ("train", "Summarization"), "task2_sentiment": ("train", "Sentiment Analysis"),
         "task3_entailment": ("test", "Textual Entailment"), "task4_qa": ("test", "Question Answering")}


def test_an_hf_source_is_keyed_on_its_content_so_a_changed_dataset_is_converted_afresh(tmp_path):
    """The cell id's data fingerprint and the conversion cache follow the dataset's content, not
    the source string: after a task is removed from the saved folder, the fingerprint changes
    and the next conversion no longer holds the task."""
    from ablate.plan import expand_grid
    from ablate.spec import load_spec

    saved = tmp_path / "superni_hf"
    _save_release_rows(saved, TASKS)
    source = f"hf:{saved}"
    before = source_fingerprint(source, 0)
    assert source_fingerprint(source, 0) == before, "stable while the data is"
    first = resolve_task_dir(source, 0, tmp_path / "cache")
    assert "task4_qa" in TaskLibrary(first).names()

    (tmp_path / "spec.yaml").write_text(f"name: x\ndata: {{source: '{source}', instances_per_task: 2}}\n"
                                        "model: copy_demo\ntrain: {steps: 1, batch_size: 1, learning_rate: 0.1, max_source_length: 64, "
                                        "max_target_length: 8, encoding: def}\n"
                                        "seeds: [0]\n")
    spec = load_spec(str(tmp_path / "spec.yaml"), [], tmp_path)
    old_ids = [c.id for c in expand_grid(spec, source_fingerprint(source, 0))]

    import shutil
    shutil.rmtree(saved)
    _save_release_rows(saved, {k: v for k, v in TASKS.items() if k != "task4_qa"})
    after = source_fingerprint(source, 0)
    assert after != before
    second = resolve_task_dir(source, 0, tmp_path / "cache")
    assert second != first and "task4_qa" not in TaskLibrary(second).names(), "converted afresh, not the old cache"
    assert TaskLibrary(second).split("default").test_tasks == ("task3_entailment",)
    assert [c.id for c in expand_grid(spec, after)] != old_ids, "the cells' ids change with the data"


def test_the_hf_conversion_keeps_the_rows_demonstrations(tmp_path):
    saved = tmp_path / "superni_hf"
    _save_release_rows(saved, TASKS)
    library = TaskLibrary(resolve_task_dir(f"hf:{saved}", 0, tmp_path / "cache"))
    task = library.get("task1_summary")
    assert [(e.input, e.output, e.explanation) for e in task.positive_examples] == [
        ("task1_summary in", "task1_summary out", "because"), ("task1_summary in2", "task1_summary out2", "")]
    assert [(e.input, e.output) for e in task.negative_examples] == [("task1_summary bad", "no")]
    assert library.example_counts("task3_entailment") == (2, 1)

    from ablate.data.encoding import build_source, parse_encoding
    prompt = build_source(task, task.instances[0], parse_encoding("def+pos2"))
    assert "Positive Example 2 -\nInput: task1_summary in2." in prompt, "a def+pos2 prompt holds the examples"


def _hf_spec(folder, source, encoding):
    (folder / "spec.yaml").write_text(
        f"name: hfdata\ndata: {{source: '{source}', instances_per_task: 2, held_out_clusters: [nli]}}\n"
        f"model: copy_demo\ntrain: {{steps: 1, batch_size: 1, learning_rate: 0.1, max_source_length: 64, "
        f"max_target_length: 8, encoding: '{encoding}'}}\n"
        "eval: {instances_per_task: 2}\nseeds: [0]\n")
    return folder / "spec.yaml"


def test_validate_writes_nothing_for_an_hf_source_and_warns_of_missing_demonstrations(tmp_path):
    """`validate` converts an hf: source in a scratch folder (no ablate_runs/NAME/cache/hf-*), and
    says when the encoding asks for demonstrations the data does not have."""
    from tests.conftest import ablate_cli

    bare, full = tmp_path / "bare_rows", tmp_path / "full_rows"
    _save_release_rows(bare, TASKS, with_examples=False)
    _save_release_rows(full, TASKS)
    spec = _hf_spec(tmp_path, f"hf:{bare}", "def+pos2")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    checked = ablate_cli("validate", str(spec), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "Warning: encoding 'def+pos2' asks for positive examples, but 1 of the 1 test task(s) have none" \
        in checked.stdout and "positive_examples" in checked.stdout
    assert "OK (1 cells)" in checked.stdout
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "validate wrote nothing"
    planned = ablate_cli("plan", str(_hf_spec(tmp_path, f"hf:{full}", "def+pos2")), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "Warning" not in planned.stdout and "Tasks: 1 test task(s) from the held-out clusters (nli)" in planned.stdout
    assert not (tmp_path / "ablate_runs").exists()
