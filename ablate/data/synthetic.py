"""The built-in synthetic task suite: SuperNI-format tasks a tiny T5 can learn on a CPU.

Every instance is a short list of words from six word classes (animals, fruits, colours, tools,
cities, drinks). Each task applies one operation, chosen by its definition, so the same list has
different answers under different tasks.

Most tasks apply a *template* to one word class ("Write the first colour in the list, or none").
Each of five training clusters teaches one template, on four of the six classes; the held-out
clusters (nli, commonsense, closed_book_qa) ask the same templates about the other two classes.
Solving a held-out task takes reading both parts of its definition: the template, learnt in one
training cluster, and the class, learnt through the other templates. Each template has its own
answer format (a number, words of the list, yes/no), so a held-out task gains little before its
template's cluster is added, and held-out scores grow as clusters are added (sweeps/clusters.yaml).

    ablate synth --out synthetic_tasks --seed 0
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SUITE_VERSION = "3"

WORD_CLASSES: dict[str, tuple[str, ...]] = {
    "animal": ("cat", "dog", "cow", "fox", "owl"),
    "fruit": ("apple", "pear", "plum", "lime", "fig"),
    "colour": ("red", "blue", "green", "pink", "gray"),
    "tool": ("saw", "axe", "drill", "hammer", "rake"),
    "city": ("paris", "rome", "oslo", "lima", "cairo"),
    "drink": ("tea", "milk", "juice", "soda", "wine"),
}
CLASS_OF = {word: cls for cls, words in WORD_CLASSES.items() for word in words}
CLASSES = tuple(WORD_CLASSES)
VOCABULARY = tuple(sorted(CLASS_OF))
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven")
NONE_WORD = "none"
MIN_WORDS, MAX_WORDS = 3, 6
PRESENT_SHARE = 0.8
POSITIVE_EXAMPLES, NEGATIVE_EXAMPLES = 4, 2  # four, so that pos4 differs from pos2

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
    about: str | None = None  # the word class the definition asks about


@dataclass(frozen=True)
class Template:
    """A question about one word class, and the categories of its training and held-out tasks."""
    key: str
    training_category: str
    held_out_category: str
    definition: str
    answer: Callable[[str, list[str]], str]
    explain: Callable[[str, list[str], str], str]
    balance: tuple[str, str] | None = None


def _of(cls: str, words: list[str]) -> list[str]:
    return [w for w in words if CLASS_OF[w] == cls]


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


YES_NO = ("yes", "no")
# Training clusters in the order sweeps/clusters.yaml adds them, one template each. Each template
# has its own answer format, so a held-out task gains little until its template is taught.
TEMPLATES = (
    Template("count", "Program Execution", "Question Answering",
             "Count the {cls} words in the list and answer with a number word",
             lambda c, w: NUMBER_WORDS[len(_of(c, w))], lambda c, w, a: f"the list has {a} {c} words"),
    Template("first", "Keyword Tagging", "Commonsense Classification",
             "Write the first {cls} in the list, or none",
             lambda c, w: (_of(c, w) or [NONE_WORD])[0], lambda c, w, a: f"the first {c} is {a}"),
    Template("last", "Summarization", "Commonsense Classification",
             "Write the last {cls} in the list, or none",
             lambda c, w: (_of(c, w) or [NONE_WORD])[-1], lambda c, w, a: f"the last {c} is {a}"),
    Template("filter", "Information Extraction", "Question Answering",
             "Write every {cls} in the list, in order, or none",
             lambda c, w: " ".join(_of(c, w)) or NONE_WORD, lambda c, w, a: f"the {c} words are {a}"),
    Template("contains", "Sentiment Analysis", "Textual Entailment",
             "Answer yes if the list contains {a_cls}, otherwise answer no",
             lambda c, w: _yes_no(bool(_of(c, w))),
             lambda c, w, a: f"the list has {'' if a == 'yes' else 'no '}{c} words", balance=YES_NO),
)


def held_out_classes(template_index: int) -> tuple[str, str]:
    """The two classes a template asks about only in held-out tasks: rotating, so that every class
    is held out somewhere and taught through the other templates, and no two templates share a pair."""
    first = (2 * template_index + template_index // 3) % len(CLASSES)
    return CLASSES[first], CLASSES[(first + 1) % len(CLASSES)]


def _template_operation(index: int, template: Template, cls: str) -> Operation:
    held_out = cls in held_out_classes(index)
    return Operation(
        key=f"{template.key}_{cls}",
        category=template.held_out_category if held_out else template.training_category,
        definition=template.definition.format(cls=cls, a_cls=_a(cls)),
        answer=lambda w, t=template, c=cls: t.answer(c, w),
        explain=lambda w, a, t=template, c=cls: t.explain(c, w, a), balance=template.balance, about=cls)


def _operations() -> list[Operation]:
    ops = [_template_operation(i, t, c) for i, t in enumerate(TEMPLATES) for c in CLASSES]

    def add(key, category, definition, answer, explain):
        ops.append(Operation(key, category, definition, answer, explain))

    # Training-only clusters outside the clusters sweep: whole-list operations and word classes.
    add("first_word", "Paraphrasing", "Write the first word of the list",
        lambda w: w[0], lambda w, a: f"the list starts with {a}")
    add("last_word", "Paraphrasing", "Write the last word of the list",
        lambda w: w[-1], lambda w, a: f"the list ends with {a}")
    add("count_words", "Coreference Resolution", "Count the words in the list and answer with a number word",
        lambda w: NUMBER_WORDS[len(w)], lambda w, a: f"the list has {a} words")
    add("sort_words", "Coreference Resolution", "Write the words of the list in alphabetical order",
        lambda w: " ".join(sorted(w)), lambda w, a: "the words are sorted from a to z")
    add("label_words", "Translation", "Replace every word of the list with the name of its class",
        lambda w: " ".join(CLASS_OF[x] for x in w), lambda w, a: "each word becomes its class")
    add("label_first", "Translation", "Write the class of the first word of the list",
        lambda w: CLASS_OF[w[0]], lambda w, a: f"{w[0]} is {_a(a)}")
    add("label_last", "Translation", "Write the class of the last word of the list",
        lambda w: CLASS_OF[w[-1]], lambda w, a: f"{w[-1]} is {_a(a)}")
    return ops


def _random_list(rng: random.Random) -> list[str]:
    return rng.sample(VOCABULARY, rng.randint(MIN_WORDS, MAX_WORDS))


def _list_with(cls: str, rng: random.Random) -> list[str]:
    while True:
        words = _random_list(rng)
        if _of(cls, words):
            return words


def _sample_lists(op: Operation, rng: random.Random, count: int) -> list[list[str]]:
    """Random word lists; for yes/no tasks, half of each answer; for other questions about a class,
    mostly lists that hold one (so "none" is not the usual answer)."""
    if op.balance is None:
        return [_list_with(op.about, rng) if op.about and rng.random() < PRESENT_SHARE else _random_list(rng)
                for _ in range(count)]
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
    if op.balance is not None:
        return op.balance[1] if right == op.balance[0] else op.balance[0]
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
    demo_lists = _sample_lists(op, rng, POSITIVE_EXAMPLES + NEGATIVE_EXAMPLES)
    positives = [{"input": " ".join(w), "output": op.answer(w),
                  "explanation": f"The answer is {op.answer(w)} because {op.explain(w, op.answer(w))}."}
                 for w in demo_lists[:POSITIVE_EXAMPLES]]
    negatives = []
    for words in demo_lists[POSITIVE_EXAMPLES:]:
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
