"""Data sources and pretrained models through their real code paths, offline."""

import json

from ablate.data.sources import resolve_task_dir, source_fingerprint
from ablate.data.tasks import TaskLibrary


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
    assert source_fingerprint(f"hf:{saved}", 0) != source_fingerprint(f"hf:{tmp_path / 'other'}", 0)
