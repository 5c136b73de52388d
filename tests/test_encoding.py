"""Tk-Instruct prompt text, checked against strings written out by hand from the official rules."""

import json
from pathlib import Path

import pytest

from ablate.data.encoding import (Encoding, Truncation, build_source, build_sources, choose_reference,
                                  parse_encoding, punctuate)
from ablate.data.tasks import load_task
from ablate.errors import AblateError


@pytest.fixture
def weather(fixture_tasks):
    return load_task(fixture_tasks / "tasks" / "task901_edge_no_final_punct.json")


@pytest.fixture
def summary(fixture_tasks):
    return load_task(fixture_tasks / "tasks" / "task902_edge_missing_explanations.json")


def test_punctuate_adds_a_period_only_without_final_ascii_punctuation():
    assert punctuate("yes") == "yes."
    assert punctuate("yes!") == "yes!"
    assert punctuate("a:") == "a:"
    assert punctuate("ok ") == "ok ."
    assert punctuate("café…") == "café….", "non-ASCII punctuation does not count"


def test_definition_only(weather):
    source = build_source(weather, weather.instances[0], parse_encoding("def"))
    assert source == ("Definition: Given a sentence about weather, say whether it mentions rain.\n\n"
                      "Now complete the following example -\nInput: The storm brought heavy rain.\nOutput: ")


def test_everything_with_empty_explanation_fewer_negatives_and_newline_input(weather):
    source = build_source(weather, weather.instances[1], parse_encoding("def+pos2+neg2+expl"))
    assert source == (
        "Definition: Given a sentence about weather, say whether it mentions rain.\n\n"
        " Positive Example 1 -\nInput: It rained all day.\n Output: yes.\n Explanation: It mentions rain.\n\n"
        " Positive Example 2 -\nInput: Sunny skies!\n Output: no.\n Explanation: .\n\n"
        " Negative Example 1 -\nInput: Clouds gathered.\n Output: maybe.\n"
        " Explanation: The answer must be yes or no.\n\n"
        "Now complete the following example -\nInput: Line one\nLine two with snow.\nOutput: ")


def test_task_id_and_examples_without_definition(weather):
    source = build_source(weather, weather.instances[2], parse_encoding("task_id+pos2"))
    assert source == ("task901_edge_no_final_punct. "
                      " Positive Example 1 -\nInput: It rained all day.\n Output: yes.\n\n"
                      " Positive Example 2 -\nInput: Sunny skies!\n Output: no.\n\n"
                      "Now complete the following example -\nInput: Ünïcödé regen — naïve café ☔.\nOutput: ")


def test_missing_explanation_key_adds_no_explanation_line_and_empty_output_gets_a_period(summary):
    source = build_source(summary, summary.instances[0], parse_encoding("pos4+neg2+expl"))
    assert source == (" Positive Example 1 -\nInput: The cat sat on the mat and slept.\n Output: Cat sleeps.\n\n"
                      " Negative Example 1 -\nInput: Dogs bark loudly at night.\n"
                      " Output: The dogs are barking loudly at night.\n\n"
                      " Negative Example 2 -\nInput: Birds sing.\n Output: .\n\n"
                      "Now complete the following example -\nInput: Rivers flow into the sea.\nOutput: ")


def test_definition_ending_in_colon_keeps_it(summary):
    assert build_source(summary, summary.instances[1], parse_encoding("def")).startswith(
        "Definition: Summarize the text in three words or fewer:\n\n")


def _word_truncation(limit):
    return Truncation(limit, lambda texts: [len(text.split()) for text in texts],
                      lambda texts, n: [" ".join(text.split()[:n]) for text in texts])


def test_truncation_adds_examples_while_they_fit_then_cuts(weather):
    encoding = parse_encoding("def+pos2")
    full = build_source(weather, weather.instances[0], encoding)
    assert build_source(weather, weather.instances[0], encoding, _word_truncation(1000)) == full
    # Definition (11 words) + instance (10 words) + the first example (13 words) fit in 35; the second does not.
    fitted = build_source(weather, weather.instances[0], encoding, _word_truncation(35))
    assert "Positive Example 1" in fitted and "Positive Example 2" not in fitted
    assert fitted.endswith("Output: ")
    cut = build_source(weather, weather.instances[0], encoding, _word_truncation(5))
    assert cut == "Definition: Given a sentence about"


def test_truncation_measures_without_task_id_as_the_official_collator(weather):
    with_id = build_source(weather, weather.instances[0], parse_encoding("task_id+def+pos2"), _word_truncation(35))
    assert "Positive Example 1" in with_id and "Positive Example 2" not in with_id


def test_prompts_built_together_each_keep_what_fits_them_alone_with_one_measure_per_demonstration_slot(weather, summary):
    """A batch mixes prompts that keep both, one or none of their demonstrations and one cut to
    the limit: each is the prompt built alone, and the tokenizer is called once per slot."""
    calls = []

    def count(texts):
        calls.append(len(texts))
        return [len(text.split()) for text in texts]

    truncation = Truncation(35, count, lambda texts, n: [" ".join(text.split()[:n]) for text in texts])
    encoding = parse_encoding("def+pos2+neg2")
    pairs = [(weather, instance) for instance in weather.instances] + [(summary, i) for i in summary.instances]
    alone = [build_source(task, instance, encoding, truncation) for task, instance in pairs]
    assert len({s.count("Positive Example") for s in alone}) > 1, "the fixtures differ in what fits"
    calls.clear()
    assert build_sources(pairs, encoding, truncation) == alone
    assert len(calls) <= 2 + 2 + 1, "two positive slots, two negative slots, then the whole prompts"
    assert build_sources(pairs, encoding) == [build_source(t, i, encoding) for t, i in pairs]
    assert build_sources([], encoding, truncation) == []


@pytest.mark.parametrize("name, expected", [
    ("def", Encoding(definition=True)),
    ("pos2", Encoding(num_pos=2)),
    ("def+pos2+neg2+expl", Encoding(definition=True, num_pos=2, num_neg=2, explanation=True)),
    ("task_id+def+pos2", Encoding(task_id=True, definition=True, num_pos=2)),
    ("def+pos4", Encoding(definition=True, num_pos=4)),
    ("task_id", Encoding(task_id=True)),
])
def test_parse_encoding_round_trips(name, expected):
    assert parse_encoding(name) == expected
    assert parse_encoding(name).name == name


@pytest.mark.parametrize("name, says", [
    ("def+pos2+foo", "unknown element 'foo'"), ("", "empty"), ("def+def", "twice"),
    ("pos0", "zero"), ("def+expl", "'expl' adds explanations"), ("Def", "unknown element"),
])
def test_bad_encodings_name_the_problem_and_list_valid_elements(name, says):
    with pytest.raises(AblateError) as error:
        parse_encoding(name)
    assert says in str(error.value)


def test_unknown_element_lists_valid_ones():
    with pytest.raises(AblateError, match="task_id, def, posK, negK, expl"):
        parse_encoding("definition")


def test_training_target_is_a_seeded_choice_among_references(summary):
    import random

    instance = summary.instances[0]
    picks = [choose_reference(instance, random.Random(seed)) for seed in range(30)]
    assert set(picks) <= set(instance.references) and len(set(picks)) > 1
    assert picks == [choose_reference(instance, random.Random(seed)) for seed in range(30)]


TRUNCATION = Path(__file__).parent / "fixtures" / "truncation"
PINNED_TOKENIZERS = ("t5_like", "gpt2_like", "llama_like")


def _pinned_tokenizer(name):
    from transformers import PreTrainedTokenizerFast

    specials = {"t5_like": {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
                "gpt2_like": {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"},
                "llama_like": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}}[name]
    return PreTrainedTokenizerFast(tokenizer_file=str(TRUNCATION / name / "tokenizer.json"), **specials)


@pytest.mark.parametrize("name", PINNED_TOKENIZERS)
def test_truncated_prompts_are_cut_as_transformers_4_cut_them(name):
    """tests/fixtures/truncation/expected.json holds what Tk-Instruct's stack (transformers 4.26,
    which decodes as the pinned 4.17 does) made of SuperNI-shaped prompts cut to 8-48 tokens by a
    T5-like (unigram), a GPT-2-like (byte-level BPE) and a Llama-like (BPE, byte fallback)
    tokenizer: ablate's cut, on transformers 5, gives the same text, including the prompts where
    the 4.x clean-up of spaces before punctuation changed the text."""
    from ablate.data.encoding import tokenizer_truncation

    prompts = json.loads((TRUNCATION / "prompts.json").read_text(encoding="utf-8"))
    expected = json.loads((TRUNCATION / "expected.json").read_text(encoding="utf-8"))
    assert expected["transformers"].startswith("4.")
    tokenizer = _pinned_tokenizer(name)
    cleaned = 0
    for cut in expected["cuts"][name]:
        source = prompts[cut["prompt"]]["source"]
        truncation = tokenizer_truncation(tokenizer, cut["limit"])
        assert truncation.cut([source], cut["limit"]) == [cut["text"]], (cut["prompt"], cut["limit"])
        plain = tokenizer.decode(tokenizer(source)["input_ids"][:cut["limit"]], skip_special_tokens=True,
                                 clean_up_tokenization_spaces=False)
        cleaned += plain != cut["text"]
        if prompts[cut["prompt"]]["encoding"] == "def":  # no demonstrations to fit: the prompt is the cut
            task = load_task(next(TRUNCATION.parent.glob(f"*/**/{prompts[cut['prompt']]['task']}.json")))
            instance = next(i for i in task.instances if i.id == prompts[cut["prompt"]]["id"])
            assert build_source(task, instance, parse_encoding("def"), truncation) == cut["text"]
    assert len(expected["cuts"][name]) > 100 and cleaned >= 10, "the fixture holds prompts the clean-up changes"


def test_the_pinned_clean_up_removes_spaces_before_punctuation_and_contractions():
    from ablate.data.encoding import clean_up_spaces

    assert clean_up_spaces("C : ? yes . no , wow ! it 's , they 're , I 'm , we 've , is n't , a ' b") == \
        "C :? yes. no, wow! it's, they're, I'm, we've, isn't, a'b"
    assert clean_up_spaces(" .") == "." and clean_up_spaces("a  .") == "a ." and clean_up_spaces("x 'd") == "x 'd"
