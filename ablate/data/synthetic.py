"""The built-in synthetic task suite: SuperNI-format tasks a tiny T5 can learn on a CPU.

Every instance is a short list of words from five word classes (animals, fruits, colours,
tools, cities). Each task applies one operation chosen by its definition, so the same list
has different answers under different tasks. Held-out clusters (nli, commonsense,
closed_book_qa) compose skills that training clusters teach: knowing a word's class
(extraction, translation), answering yes/no (program execution), counting (program
execution) — so more training clusters can help on them.

    ablate synth --out synthetic_tasks --seed 0
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SUITE_VERSION = "2"

WORD_CLASSES: dict[str, tuple[str, ...]] = {
    "animal": ("cat", "dog", "cow", "fox", "owl"),
    "fruit": ("apple", "pear", "plum", "lime", "fig"),
    "colour": ("red", "blue", "green", "pink", "gray"),
    "tool": ("saw", "axe", "drill", "hammer", "rake"),
    "city": ("paris", "rome", "oslo", "lima", "cairo"),
}
CLASS_OF = {word: cls for cls, words in WORD_CLASSES.items() for word in words}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven")
PROBE_WORDS = ("dog", "plum", "blue", "rake", "oslo")
CLASS_PAIRS = (("animal", "fruit"), ("colour", "tool"), ("city", "animal"), ("fruit", "colour"),
               ("tool", "city"))
NONE_WORD = "none"

# category -> cluster in the default cluster map (ablate.data.clusters) and the default split.
HELD_OUT_CATEGORIES = ("Textual Entailment", "Commonsense Classification", "Question Answering")

Answer = Callable[[list[str]], str]


@dataclass(frozen=True)
class Operation:
    key: str
    category: str
    definition: str
    answer: Answer
    explain: Callable[[list[str], str], str]
    balance: tuple[str, str] | None = None  # two answers to balance (yes/no tasks)


def _of(cls: str, words: list[str]) -> list[str]:
    return [w for w in words if CLASS_OF[w] == cls]


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _conditions(cls: str) -> dict[str, tuple[str, Callable[[list[str]], bool]]]:
    """Statements about a list, by key: (the words of the statement, whether it holds)."""
    return {
        "contains": (f"the list contains {_a(cls)}", lambda w: bool(_of(cls, w))),
        "lacks": (f"the list has no {cls}", lambda w: not _of(cls, w)),
        "first_is": (f"the first word of the list is {_a(cls)}", lambda w: CLASS_OF[w[0]] == cls),
    }


YES_NO, POSITIVE_NEGATIVE = ("yes", "no"), ("positive", "negative")
# Training clusters ask yes/no statements and counts about these classes; the held-out clusters
# ask the same kinds of question about the other classes, which training clusters teach only
# through other task types (extraction, summarization, translation, ...).
SEEN_CLASSES = ("animal", "fruit")


def _operations() -> list[Operation]:
    ops: list[Operation] = []

    def add(key, category, definition, answer, explain, balance=None):
        ops.append(Operation(key, category, definition, answer, explain, balance))

    def add_binary(key, category, statement, holds, labels):
        """"Answer <yes> if <statement>, otherwise answer <no>" with balanced labels."""
        right, wrong = labels
        add(key, category, f"Answer {right} if {statement}, otherwise answer {wrong}",
            lambda w: right if holds(w) else wrong,
            lambda w, a: f"it is {'' if holds(w) else 'not '}true that {statement}", balance=labels)

    # program_execution: positions, sorting, counting, and the yes/no format on a given word.
    add("first_word", "Program Execution", "Write the first word of the list",
        lambda w: w[0], lambda w, a: f"the list starts with {a}")
    add("last_word", "Program Execution", "Write the last word of the list",
        lambda w: w[-1], lambda w, a: f"the list ends with {a}")
    add("sort_words", "Program Execution", "Write the words of the list in alphabetical order",
        lambda w: " ".join(sorted(w)), lambda w, a: "the words are sorted from a to z")
    add("count_words", "Program Execution", "Count the words in the list and answer with a number word",
        lambda w: NUMBER_WORDS[len(w)], lambda w, a: f"the list has {a} words")
    for word in PROBE_WORDS:
        add_binary(f"has_{word}", "Program Execution", f"the word {word} is in the list",
                   lambda w, word=word: word in w, YES_NO)
    for cls in WORD_CLASSES:
        statements = _conditions(cls)
        held_out = cls not in SEEN_CLASSES
        # sentiment (seen classes) / nli (held out): whether a class is present or absent.
        add_binary(f"contains_{cls}", "Textual Entailment" if held_out else "Sentiment Analysis",
                   *statements["contains"], YES_NO)
        add_binary(f"lacks_{cls}", "Textual Entailment" if held_out else "Sentiment Analysis",
                   *statements["lacks"], YES_NO)
        # paraphrase (seen classes) / commonsense (held out): the class of the first word.
        add_binary(f"first_is_{cls}", "Commonsense Classification" if held_out else "Text Matching",
                   *statements["first_is"], YES_NO)
        # reading comprehension (seen classes) / closed-book QA (held out): counting a class.
        add(f"count_{cls}", "Question Answering" if held_out else "Information Extraction",
            f"Count the {cls} words in the list and answer with a number word",
            lambda w, cls=cls: NUMBER_WORDS[len(_of(cls, w))],
            lambda w, a, cls=cls: f"the list has {a} {cls} words")
        # extraction: which words belong to a class.
        add(f"filter_{cls}", "Keyword Tagging", f"Write every {cls} in the list, in order, or none",
            lambda w, cls=cls: " ".join(_of(cls, w)) or NONE_WORD,
            lambda w, a, cls=cls: f"the {cls} words are {a}")
        # summarization: first / last member of a class.
        add(f"first_{cls}", "Summarization", f"Write the first {cls} in the list, or none",
            lambda w, cls=cls: (_of(cls, w) or [NONE_WORD])[0],
            lambda w, a, cls=cls: f"the first {cls} is {a}")
        add(f"last_{cls}", "Summarization", f"Write the last {cls} in the list, or none",
            lambda w, cls=cls: (_of(cls, w) or [NONE_WORD])[-1],
            lambda w, a, cls=cls: f"the last {cls} is {a}")
        # reading comprehension: how many words precede the first member of a class.
        add(f"before_{cls}", "Information Extraction",
            f"Count the words before the first {cls} in the list and answer with a number word, or none",
            lambda w, cls=cls: _words_before_first(cls, w),
            lambda w, a, cls=cls: f"{a} words come before the first {cls}")
        # paraphrase: the list without a class.
        add(f"remove_{cls}", "Paraphrasing", f"Write the list again without its {cls} words, or none",
            lambda w, cls=cls: " ".join(x for x in w if CLASS_OF[x] != cls) or NONE_WORD,
            lambda w, a, cls=cls: f"removing every {cls} leaves {a}")
        # coreference: the word after the first member of a class.
        add(f"after_{cls}", "Coreference Resolution",
            f"Write the word that comes right after the first {cls} in the list, or none",
            lambda w, cls=cls: _after_first(cls, w),
            lambda w, a, cls=cls: f"after the first {cls} comes {a}")
    for first, second in CLASS_PAIRS:
        add_binary(f"more_{first}_than_{second}", "Sentiment Analysis",
                   f"the list has more {first} words than {second} words",
                   lambda w, f=first, s=second: len(_of(f, w)) > len(_of(s, w)), POSITIVE_NEGATIVE)
        # reading comprehension: counting the members of two classes together.
        add(f"count_{first}_and_{second}", "Information Extraction",
            f"Count the {first} and {second} words in the list and answer with a number word",
            lambda w, f=first, s=second: NUMBER_WORDS[len(_of(f, w)) + len(_of(s, w))],
            lambda w, a, f=first, s=second: f"the list has {a} {f} or {s} words")
    add("label_words", "Translation", "Replace every word of the list with the name of its class",
        lambda w: " ".join(CLASS_OF[x] for x in w), lambda w, a: "each word becomes its class")
    add("label_first", "Translation", "Write the class of the first word of the list",
        lambda w: CLASS_OF[w[0]], lambda w, a: f"{w[0]} is {_a(a)}")
    add("label_last", "Translation", "Write the class of the last word of the list",
        lambda w: CLASS_OF[w[-1]], lambda w, a: f"{w[-1]} is {_a(a)}")
    return ops


def _after_first(cls: str, words: list[str]) -> str:
    for position, word in enumerate(words[:-1]):
        if CLASS_OF[word] == cls:
            return words[position + 1]
    return NONE_WORD


def _words_before_first(cls: str, words: list[str]) -> str:
    for position, word in enumerate(words):
        if CLASS_OF[word] == cls:
            return NUMBER_WORDS[position]
    return NONE_WORD


def _random_list(rng: random.Random) -> list[str]:
    vocabulary = sorted(CLASS_OF)
    return rng.sample(vocabulary, rng.randint(2, 5))


def _sample_lists(op: Operation, rng: random.Random, count: int) -> list[list[str]]:
    """Random word lists; for yes/no-style tasks, half of each answer."""
    if op.balance is None:
        return [_random_list(rng) for _ in range(count)]
    wanted = {op.balance[0]: count - count // 2, op.balance[1]: count // 2}
    lists: list[list[str]] = []
    while any(wanted.values()):
        words = _random_list(rng)
        answer = op.answer(words)
        if wanted.get(answer, 0) > 0:
            wanted[answer] -= 1
            lists.append(words)
    rng.shuffle(lists)
    return lists


def _wrong_answer(op: Operation, words: list[str], rng: random.Random) -> str:
    right = op.answer(words)
    for _ in range(100):
        other = op.answer(_random_list(rng))
        if other != right:
            return other
    return NONE_WORD if right != NONE_WORD else "yes"


def _cluster_of(category: str) -> str:
    from ablate.data.clusters import DEFAULT_CLUSTERS

    return next(c for c, cats in DEFAULT_CLUSTERS.items() if category in cats)


def build_task(number: int, op: Operation, seed: int, num_instances: int) -> tuple[str, dict]:
    """One task's name and its SuperNI JSON object."""
    rng = random.Random(f"{seed}:{op.key}")
    name = f"task{number:03d}_synthetic_{_cluster_of(op.category)}_{op.key}"
    demo_lists = _sample_lists(op, rng, 4)
    positives = [{"input": " ".join(w), "output": op.answer(w),
                  "explanation": f"The answer is {op.answer(w)} because {op.explain(w, op.answer(w))}."}
                 for w in demo_lists[:2]]
    negatives = []
    for words in demo_lists[2:]:
        wrong = _wrong_answer(op, words, rng)
        negatives.append({"input": " ".join(words), "output": wrong,
                          "explanation": f"The answer {wrong} is wrong because "
                                         f"{op.explain(words, op.answer(words))}."})
    instances = [{"id": f"{name}-{i}", "input": " ".join(words), "output": [op.answer(words)]}
                 for i, words in enumerate(_sample_lists(op, rng, num_instances))]
    task = {
        "Contributors": ["ablate synthetic suite"],
        "Source": ["synthetic"],
        "Categories": [op.category],
        "Reasoning": [],
        "Definition": [f"{op.definition}."],
        "Input_language": ["English"],
        "Output_language": ["English"],
        "Instruction_language": ["English"],
        "Domains": ["Synthetic"],
        "Positive Examples": positives,
        "Negative Examples": negatives,
        "Instances": instances,
    }
    return name, task


def generate_suite(seed: int = 0, num_instances: int = 400) -> dict[str, dict]:
    """All tasks of the suite, by name, in a deterministic order."""
    return dict(build_task(number, op, seed, num_instances)
                for number, op in enumerate(_operations(), start=1))


def write_suite(out_dir: str | Path, seed: int = 0, num_instances: int = 400) -> Path:
    """Write tasks/, splits/default/ and a word-level tokenizer.json; returns the directory."""
    from ablate.data.tokenizer import build_word_tokenizer, suite_texts

    out_dir = Path(out_dir)
    tasks = generate_suite(seed, num_instances)
    (out_dir / "tasks").mkdir(parents=True, exist_ok=True)
    for name, task in tasks.items():
        (out_dir / "tasks" / f"{name}.json").write_text(json.dumps(task, indent=1, ensure_ascii=False) + "\n")
    split_dir = out_dir / "splits" / "default"
    split_dir.mkdir(parents=True, exist_ok=True)
    test = [n for n, t in tasks.items() if t["Categories"][0] in HELD_OUT_CATEGORIES]
    train = [n for n in tasks if n not in test]
    (split_dir / "train_tasks.txt").write_text("\n".join(train) + "\n")
    (split_dir / "test_tasks.txt").write_text("\n".join(test) + "\n")
    build_word_tokenizer(suite_texts(tasks.items())).save(str(out_dir / "tokenizer.json"))
    (out_dir / "README.md").write_text(
        f"Synthetic SuperNI-format suite written by `ablate synth` (suite version {SUITE_VERSION}, seed {seed}).\n")
    return out_dir
