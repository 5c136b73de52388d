"""Prompt encodings in the Tk-Instruct text format.

An encoding name joins elements with '+': `task_id`, `def`, `posK`, `negK`, `expl`
(e.g. `def+pos2`, `def+pos2+neg2+expl`). `build_source` renders the exact text the
official Tk-Instruct collator feeds the model, truncation rules included.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Callable

from ablate.data.tasks import Example, Instance, Task
from ablate.errors import AblateError

VALID_ELEMENTS = ("task_id", "def", "posK", "negK", "expl")
_COUNTED = re.compile(r"^(pos|neg)(\d+)$")


@dataclass(frozen=True)
class Encoding:
    """Which instruction elements a prompt holds."""

    task_id: bool = False
    definition: bool = False
    num_pos: int = 0
    num_neg: int = 0
    explanation: bool = False

    @property
    def name(self) -> str:
        parts = []
        if self.task_id:
            parts.append("task_id")
        if self.definition:
            parts.append("def")
        if self.num_pos:
            parts.append(f"pos{self.num_pos}")
        if self.num_neg:
            parts.append(f"neg{self.num_neg}")
        if self.explanation:
            parts.append("expl")
        return "+".join(parts)


def parse_encoding(name: str) -> Encoding:
    """Parse `def+pos2+neg2+expl` into an Encoding; unknown or repeated elements are errors."""
    if not isinstance(name, str) or not name.strip():
        raise AblateError(f"empty encoding name {name!r}.",
                          fix=f"join elements with '+': {', '.join(VALID_ELEMENTS)} (e.g. def+pos2).")
    fields: dict[str, object] = {}
    for element in name.split("+"):
        counted = _COUNTED.match(element)
        if element == "task_id":
            key, value = "task_id", True
        elif element == "def":
            key, value = "definition", True
        elif element == "expl":
            key, value = "explanation", True
        elif counted:
            key, value = ("num_pos" if counted.group(1) == "pos" else "num_neg"), int(counted.group(2))
            if value == 0:
                raise AblateError(f"encoding '{name}': '{element}' asks for zero examples.",
                                  fix=f"drop '{element}' or use a count of 1 or more.")
        else:
            raise AblateError(f"encoding '{name}': unknown element '{element}'.",
                              fix=f"use elements {', '.join(VALID_ELEMENTS)} joined by '+', "
                                  "where K is a number (e.g. def+pos2+neg2+expl).")
        if key in fields:
            raise AblateError(f"encoding '{name}': element '{element}' appears twice.",
                              fix="name each element once.")
        fields[key] = value
    encoding = Encoding(**fields)  # type: ignore[arg-type]
    if encoding.explanation and not (encoding.num_pos or encoding.num_neg):
        raise AblateError(f"encoding '{name}': 'expl' adds explanations to examples, but none are asked for.",
                          fix="add posK or negK (e.g. def+pos2+expl), or drop 'expl'.")
    return encoding


def punctuate(text: str) -> str:
    """Tk-Instruct's rule: end with a '.' unless the last character is ASCII punctuation."""
    return text if text and text[-1] in string.punctuation else text + "."


def render_example(kind: str, number: int, example: Example, with_explanation: bool) -> str:
    """One demonstration block; `kind` is 'Positive' or 'Negative', numbered from 1."""
    block = punctuate(f" {kind} Example {number} -\nInput: {example.input.strip()}") + "\n"
    block = punctuate(block + f" Output: {example.output.strip()}") + "\n"
    if with_explanation and example.explanation is not None:
        block = punctuate(block + f" Explanation: {example.explanation.strip()}") + "\n"
    return block + "\n"


def render_instance(instance: Instance) -> str:
    return punctuate(f"Now complete the following example -\nInput: {instance.input.strip()}") + "\nOutput: "


def render_definition(task: Task) -> str:
    return punctuate("Definition: " + task.definition.strip()) + "\n\n"


@dataclass(frozen=True)
class Truncation:
    """How the official collator measures and cuts a source: token count, and keep-first-N."""

    max_source_length: int
    count_tokens: Callable[[str], int]
    cut: Callable[[str, int], str]


def build_source(task: Task, instance: Instance, encoding: Encoding,
                 truncation: Truncation | None = None) -> str:
    """The exact Tk-Instruct source text for one instance.

    With `truncation`, demonstrations are added one at a time while the prompt still fits
    (measured as the official collator does: without the task id, blocks joined by a space),
    then the whole text is cut to the maximum length.
    """
    instance_text = render_instance(instance)
    task_id = f"{task.name}. " if encoding.task_id else ""
    definition = render_definition(task) if encoding.definition else ""

    def fits(text: str) -> bool:
        return truncation is None or truncation.count_tokens(text) <= truncation.max_source_length

    positives: list[str] = []
    for number, example in enumerate(task.positive_examples[:encoding.num_pos], start=1):
        block = render_example("Positive", number, example, encoding.explanation)
        if not fits(definition + " ".join(positives) + block + instance_text):
            break
        positives.append(block)
    negatives: list[str] = []
    for number, example in enumerate(task.negative_examples[:encoding.num_neg], start=1):
        block = render_example("Negative", number, example, encoding.explanation)
        if not fits(definition + " ".join(positives) + " ".join(negatives) + block + instance_text):
            break
        negatives.append(block)

    source = task_id + definition + "".join(positives) + "".join(negatives) + instance_text
    if truncation is not None and not fits(source):
        source = truncation.cut(source, truncation.max_source_length)
    return source


# What `clean_up_tokenization` of transformers 4.x removed from decoded text, in its order: the
# space before punctuation and before English contractions.
PINNED_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                   (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def clean_up_spaces(text: str) -> str:
    """Decoded text as transformers 4.x's `decode` returned it by default (Tk-Instruct pins 4.17,
    where `clean_up_tokenization_spaces` defaulted to True for every tokenizer): each pair of
    PINNED_CLEAN_UP replaced in turn, left to right, over the whole text (" ." -> ".", " n't" ->
    "n't", ...). transformers 5 no longer does this by default (and skips it for BPE
    tokenizers), so ablate applies it itself."""
    for spaced, joined in PINNED_CLEAN_UP:
        text = text.replace(spaced, joined)
    return text


def tokenizer_truncation(tokenizer, max_source_length: int) -> Truncation:
    """Truncation measured with a HF tokenizer, special tokens included, as the official collator
    does: a source longer than the limit is cut to its first `max_source_length` token ids and
    decoded, special tokens skipped and tokenization spaces cleaned up as on the transformers
    version Tk-Instruct pins (`clean_up_spaces`)."""

    def count_tokens(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    def cut(text: str, limit: int) -> str:
        decoded = tokenizer.decode(tokenizer(text)["input_ids"][:limit], skip_special_tokens=True,
                                   clean_up_tokenization_spaces=False)
        return clean_up_spaces(decoded)

    return Truncation(max_source_length, count_tokens, cut)


def choose_reference(instance: Instance, rng: random.Random) -> str:
    """The training target: one reference chosen at random (seeded), as the official collator does."""
    return rng.choice(instance.references)
