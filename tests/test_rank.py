"""Rank classification (ablate.rank) and answer options (ablate.data.options): option detection,
the index's record of it, FLAN's options suffix, and rank scores checked against a log-softmax of
the model's logits computed here, for a tiny T5 and a tiny Llama built from config."""

import json
import math
import shutil

import pytest

from ablate.data.build import build_test_dataset, tokenize_dataset
from ablate.data.index import INDEX_VERSION, build_index, read_index, save_index
from ablate.data.options import (
    has_options,
    indexed_options,
    instance_options,
    instance_with_options,
    label_set,
    options_in_prompt,
    task_options,
)
from ablate.data.library import TaskLibrary
from ablate.data.tasks import load_task
from ablate.data.tokenizer import task_dir_tokenizer
from ablate.errors import AblateError
from ablate.model import build_model
from ablate.rank import (
    OptionScore,
    choose,
    judge,
    rank_rows,
    score_options,
    summarize_rank,
)

from .conftest import FIXTURES

RANK_TASKS = FIXTURES / "rank_tasks"
EXPLICIT, LABELS, FREE = "task951_rank_explicit_options", "task952_rank_label_set", "task953_rank_free_text"


def _task(name):
    return load_task(RANK_TASKS / "tasks" / f"{name}.json")


# -- options ---------------------------------------------------------------------------------

def test_explicit_options_are_read_stripped_in_file_order_without_repeats():
    task = _task(EXPLICIT)
    assert task.instances[0].options == ("red", "blue", "dark green")
    assert task.instances[1].options == ("dark green", "blue", "red")
    # An instance's own options win over the task's label set.
    assert instance_options(task.instances[0], ["x", "y"]) == ["red", "blue", "dark green"]
    assert _task(LABELS).instances[0].options is None


def test_label_set_is_the_sorted_stripped_references_up_to_max_options():
    labels = _task(LABELS)
    assert task_options(labels) == ["maybe", "no", "yes"]
    assert instance_options(labels.instances[0], task_options(labels)) == ["maybe", "no", "yes"]
    assert task_options(labels, max_options=2) is None  # three values > 2
    assert task_options(_task(FREE)) is None  # 12 distinct references > the default 10
    assert len(task_options(_task(FREE), max_options=12)) == 12
    assert label_set(["same", " same "]) is None  # one value: nothing to rank
    assert instance_options(_task(FREE).instances[0], None) is None


def test_the_index_records_label_sets_and_given_options(tmp_path):
    entries = build_index(RANK_TASKS, [EXPLICIT, LABELS, FREE])
    assert entries[LABELS].options == ("maybe", "no", "yes") and not entries[LABELS].options_given
    assert entries[EXPLICIT].options_given
    assert entries[FREE].options is not None and len(entries[FREE].options) == 12  # recorded up to 100
    assert indexed_options(entries[FREE]) is None and not has_options(entries[FREE])
    assert indexed_options(entries[FREE], max_options=12) == sorted(entries[FREE].options)
    assert has_options(entries[EXPLICIT]) and has_options(entries[LABELS])
    save_index(tmp_path, "fp", RANK_TASKS, entries)
    assert read_index(tmp_path, "fp", [EXPLICIT, LABELS, FREE]) == entries
    # An index of the previous version (no options fields) is not read: it is built again.
    saved = json.loads((tmp_path / "fp.json").read_text())
    for entry in saved["tasks"].values():
        del entry["options"], entry["options_given"]
    (tmp_path / "old.json").write_text(json.dumps({**saved, "version": INDEX_VERSION - 1}))
    assert read_index(tmp_path, "old", [EXPLICIT, LABELS, FREE]) is None
    library = TaskLibrary(RANK_TASKS)
    assert library.options(LABELS, 10) == ["maybe", "no", "yes"] and library.options(FREE, 10) is None
    assert library.has_options(EXPLICIT, 10) and not library.has_options(FREE, 10)


@pytest.mark.parametrize("options", ["yes", [], ["yes", 3], ["yes", "  "]])
def test_a_bad_options_field_names_the_file_and_field(tmp_path, options):
    shutil.copytree(RANK_TASKS, tmp_path / "suite")
    path = tmp_path / "suite" / "tasks" / f"{LABELS}.json"
    raw = json.loads(path.read_text())
    raw["Instances"][1]["options"] = options
    path.write_text(json.dumps(raw))
    with pytest.raises(AblateError) as caught:
        load_task(path)
    assert caught.value.field == "Instances[1].options" and caught.value.file == str(path)
    assert build_index(tmp_path / "suite", [LABELS])[LABELS].error["field"] == "Instances[1].options"


def test_options_in_prompt_is_flans_suffix():
    assert options_in_prompt("Is it raining?", ["yes", "no"]) == "Is it raining?\n\nOPTIONS:\n- yes\n- no"
    instance = _task(LABELS).instances[0]
    listed = instance_with_options(instance, ["no", "yes"])
    assert listed.input == instance.input + "\n\nOPTIONS:\n- no\n- yes" and listed.references == instance.references
    assert instance_with_options(instance, None) is instance


# -- choice and metrics ----------------------------------------------------------------------

def test_ties_go_to_the_first_option_in_sorted_order():
    assert choose(["yes", "no", "maybe"], [-1.0, -1.0, -3.0]) == "no"
    assert choose(["b", "c", "a"], [0.0, 0.0, 0.0]) == "a"
    assert choose(["b", "a"], [-0.5, -2.0]) == "b"
    # acc ranks by the sum, acc_norm by the mean per token: here they disagree.
    scores = {"dark green": OptionScore(-3.0, 3), "red": OptionScore(-2.0, 1)}
    verdict = judge(["red", "dark green"], scores, [" dark green"])
    assert (verdict["choice"], verdict["acc"]) == ("red", 0.0)
    assert (verdict["choice_norm"], verdict["acc_norm"]) == ("dark green", 1.0)
    assert verdict["ll_correct"] == -1.0
    tied = judge(["red", "dark green"], {"dark green": OptionScore(-2.0, 2), "red": OptionScore(-1.0, 1)}, ["red"])
    assert tied["choice_norm"] == "dark green" and tied["acc_norm"] == 0.0  # equal means per token


def test_rank_metrics_aggregate_per_task_category_and_cluster():
    per_instance = [{"acc": 1.0, "acc_norm": 0.0, "ll_correct": -1.0}, {"acc": 0.0, "acc_norm": 0.0, "ll_correct": -2.0},
                    {"acc": 1.0, "acc_norm": 1.0, "ll_correct": -0.5}]
    result = summarize_rank(per_instance, ["t1", "t1", "t2"], ["Textual Entailment"] * 2 + ["Sentiment Analysis"],
                            ["nli", "nli", "sentiment"])
    assert (result["acc"], result["acc_norm"], result["ll_correct"]) == (66.6667, 33.3333, round(-3.5 / 3, 4))
    assert result["per_task"] == {"t1": {"acc": 50.0, "acc_norm": 0.0, "ll_correct": -1.5},
                                  "t2": {"acc": 100.0, "acc_norm": 100.0, "ll_correct": -0.5}}
    assert set(result["per_category"]) == {"textual_entailment", "sentiment_analysis"}
    assert result["per_cluster"]["nli"] == result["per_task"]["t1"]


# -- scores against a direct computation -----------------------------------------------------

MAX_SOURCE, MAX_TARGET = 256, 8  # longer than every prompt and option: nothing is cut


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return task_dir_tokenizer(RANK_TASKS, tmp_path_factory.mktemp("cache"))[0]


def _test_rows(max_options=10):
    pairs = []
    for name in (EXPLICIT, LABELS):
        task = _task(name)
        pairs += [(task, instance) for instance in task.instances]
    rows = build_test_dataset(pairs, "def+pos1", None, {"Textual Entailment": "nli"}).to_dict()
    options = [instance_options(instance, task_options(task, max_options)) for task, instance in pairs]
    return rows, options


def _direct_scores(model, tokenizer, source, option, max_source):
    """log p(option | source) token by token, from the model's logits on one unpadded sequence."""
    import torch

    source_ids = tokenizer(source)["input_ids"]
    assert len(source_ids) < max_source, "this check is of uncut prompts"
    if model.config.is_encoder_decoder:
        target = tokenizer(text_target=option)["input_ids"]  # the target and </s>
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([source_ids]), labels=torch.tensor([target])).logits[0]
        positions, tokens = range(len(target)), target
    else:
        target = tokenizer(option, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([source_ids + target])).logits[0]
        positions, tokens = range(len(source_ids) - 1, len(source_ids) + len(target) - 1), target
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return sum(logprobs[p, t].item() for p, t in zip(positions, tokens)), len(tokens)


@pytest.mark.parametrize("preset", ["t5-nano", "llama-nano"])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_rank_scores_equal_a_direct_log_softmax(tokenizer, preset, batch_size):
    model = build_model(preset, len(tokenizer), seed=0)
    rows, options = _test_rows()
    assert any(o != ["maybe", "no", "yes"] for o in options) and ["maybe", "no", "yes"] in options  # both kinds
    scores = score_options(model, tokenizer, rows["source"], options, max_source_length=MAX_SOURCE,
                           max_target_length=MAX_TARGET, batch_size=batch_size)
    assert [len(s) for s in scores] == [len(o) for o in options]
    for source, row_options, row_scores in zip(rows["source"], options, scores):
        for option, score in zip(row_options, row_scores):
            logprob, tokens = _direct_scores(model, tokenizer, source, option, MAX_SOURCE)
            assert score.tokens == tokens
            assert score.logprob == pytest.approx(logprob, abs=1e-4)
            assert score.logprob < 0


@pytest.mark.parametrize("preset", ["t5-nano", "llama-nano"])
def test_rank_scores_cover_exactly_the_training_loss_tokens(tokenizer, preset):
    """With a source cut short, the score of an option is minus the training loss of the same
    (source, target) example times its number of loss tokens."""
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq

    model = build_model(preset, len(tokenizer), seed=1)
    rows, options = _test_rows()
    max_source = 10  # shorter than every prompt: the cut is the training rule's
    causal = not model.config.is_encoder_decoder
    scores = score_options(model, tokenizer, rows["source"], options, max_source_length=max_source,
                           max_target_length=2, batch_size=4)
    pairs = [(s, o) for s, row_options in zip(rows["source"], options) for o in row_options]
    train_rows = Dataset.from_list([{"source": s, "target": o} for s, o in pairs])
    examples = tokenize_dataset(train_rows, tokenizer, "test", max_source, 2, None, causal=causal)
    collate = DataCollatorForSeq2Seq(tokenizer, model=None if causal else model, label_pad_token_id=-100)
    flat = [score for row_scores in scores for score in row_scores]
    # T5: at most one word and </s> (the target cut as its tokenizer cuts it); Llama: two words, then EOS.
    assert max(score.tokens for score in flat) == (3 if causal else 2)
    model.eval()
    for k, score in enumerate(flat):
        example = {key: examples[k][key] for key in ("input_ids", "attention_mask", "labels")}
        batch = collate([example])
        with torch.no_grad():
            loss = model(**batch).loss.item()
        assert score.tokens == sum(label != -100 for label in example["labels"])
        assert score.logprob == pytest.approx(-loss * score.tokens, abs=1e-4)


@pytest.mark.parametrize("preset", ["t5-nano", "llama-nano"])
def test_rank_rows_scores_choices_and_references_that_are_not_options(tokenizer, preset):
    model = build_model(preset, len(tokenizer), seed=2)
    rows, options = _test_rows()
    result, records = rank_rows(model, tokenizer, rows, options, max_source_length=MAX_SOURCE,
                                max_target_length=MAX_TARGET, batch_size=4)
    assert [r["id"] for r in records] == rows["id"]
    for record, row_options, references in zip(records, options, rows["references"]):
        assert record["options"] == row_options and len(record["scores"]) == len(row_options)
        best = max(record["scores"])
        assert record["choice"] == min(o for o, s in zip(row_options, record["scores"]) if s == best)
        assert record["references"] == references
    # ll_correct of the explicit task: the best reference per token, "yellow" and "deep red" included
    # although no instance lists them as options.
    expected = []
    for source, references in zip(rows["source"][:4], rows["references"][:4]):
        per_token = [lp / n for lp, n in (_direct_scores(model, tokenizer, source, r.strip(), MAX_SOURCE)
                                          for r in references)]
        expected.append(max(per_token))
    assert result["per_task"][EXPLICIT]["ll_correct"] == pytest.approx(sum(expected) / 4, abs=1e-3)
    assert result["per_task"][EXPLICIT]["acc"] <= 75.0  # the lemon's answer is not among its options
    acc = [float(r["choice"] in {x.strip() for x in r["references"]}) for r in records]
    assert result["acc"] == round(100 * sum(acc) / len(acc), 4)
    assert set(result["per_cluster"]) == {"nli", "(no cluster)"}
    assert math.isfinite(result["ll_correct"]) and result["ll_correct"] < 0
    with pytest.raises(ValueError, match="every row needs options"):
        rank_rows(model, tokenizer, rows, [None] * len(options), max_source_length=MAX_SOURCE,
                  max_target_length=MAX_TARGET, batch_size=4)


@pytest.mark.parametrize("preset", ["t5-nano", "llama-nano"])
def test_rank_scores_of_a_lora_model(tokenizer, preset):
    """A LoRA-wrapped model (peft) is scored through the same calls; a fresh adapter changes nothing."""
    from ablate.model import add_lora
    from ablate.spec import LoraSpec

    model = build_model(preset, len(tokenizer), seed=3)
    rows, options = _test_rows()
    kwargs = {"max_source_length": MAX_SOURCE, "max_target_length": MAX_TARGET, "batch_size": 4}
    plain = score_options(model, tokenizer, rows["source"], options, **kwargs)
    wrapped = add_lora(model, LoraSpec(r=4))
    wrapped.train()
    adapted = score_options(wrapped, tokenizer, rows["source"], options, **kwargs)
    assert wrapped.training  # the caller's mode is kept
    for a, b in zip(plain, adapted):
        assert [s.tokens for s in a] == [s.tokens for s in b]
        assert [s.logprob for s in a] == pytest.approx([s.logprob for s in b], abs=1e-5)
