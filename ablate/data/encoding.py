"""Prompt encodings in the Tk-Instruct text format.

An encoding name joins elements with '+': `task_id`, `def`, `posK`, `negK`, `expl`
(e.g. `def+pos2`, `def+pos2+neg2+expl`). `build_source` renders the exact text the
official Tk-Instruct collator feeds the model, truncation rules included; `build_sources` does
the same for many instances with one tokenizer call per demonstration slot.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Callable, Sequence

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
    """How the official collator measures and cuts a source: token counts, and keep-first-N. Both
    take a batch of texts (a fast tokenizer encodes a batch in one call)."""

    max_source_length: int
    count_tokens: Callable[[Sequence[str]], list[int]]
    cut: Callable[[Sequence[str], int], list[str]]


def build_source(task: Task, instance: Instance, encoding: Encoding,
                 truncation: Truncation | None = None) -> str:
    """The exact Tk-Instruct source text for one instance (see `build_sources`)."""
    return build_sources([(task, instance)], encoding, truncation)[0]


def build_sources(pairs: Sequence[tuple[Task, Instance]], encoding: Encoding,
                  truncation: Truncation | None = None) -> list[str]:
    """The exact Tk-Instruct source text of each (task, instance).

    With `truncation`, demonstrations are added one at a time while the prompt still fits
    (measured as the official collator does: without the task id, blocks joined by a space),
    then the whole text is cut to the maximum length. The prompts are measured together, one
    demonstration slot at a time: what fits is decided per prompt exactly as one at a time.
    """
    instance_texts = [render_instance(instance) for _, instance in pairs]
    definitions = [render_definition(task) if encoding.definition else "" for task, _ in pairs]
    positives: list[list[str]] = [[] for _ in pairs]
    negatives: list[list[str]] = [[] for _ in pairs]

    def fits(texts: list[str]) -> list[bool]:
        if truncation is None:
            return [True] * len(texts)
        return [count <= truncation.max_source_length for count in truncation.count_tokens(texts)]

    for kind, count, added in (("Positive", encoding.num_pos, positives), ("Negative", encoding.num_neg, negatives)):
        still_adding = list(range(len(pairs)))  # prompts whose previous demonstration fitted
        for number in range(1, count + 1):
            blocks = {}
            for i in still_adding:
                examples = pairs[i][0].positive_examples if kind == "Positive" else pairs[i][0].negative_examples
                if number <= len(examples):
                    blocks[i] = render_example(kind, number, examples[number - 1], encoding.explanation)
            trying = list(blocks)
            # The collator's measure: definition, the blocks kept so far joined by a space, the new one.
            measured = [definitions[i] + " ".join(positives[i]) + (" ".join(negatives[i]) if kind == "Negative" else "")
                        + blocks[i] + instance_texts[i] for i in trying]
            still_adding = []
            for i, fitted in zip(trying, fits(measured)):
                if fitted:
                    added[i].append(blocks[i])
                    still_adding.append(i)

    sources = [(f"{task.name}. " if encoding.task_id else "") + definitions[i] + "".join(positives[i])
               + "".join(negatives[i]) + instance_texts[i] for i, (task, _) in enumerate(pairs)]
    if truncation is not None:
        too_long = [i for i, fitted in enumerate(fits(sources)) if not fitted]
        for i, cut in zip(too_long, truncation.cut([sources[i] for i in too_long], truncation.max_source_length)):
            sources[i] = cut
    return sources


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


TOKENIZE_CHUNK = 1024  # prompts per tokenizer call when measuring


def tokenizer_truncation(tokenizer, max_source_length: int) -> Truncation:
    """Truncation measured with a HF tokenizer, special tokens included, as the official collator
    does: a source longer than the limit is cut to its first `max_source_length` token ids and
    decoded, special tokens skipped and tokenization spaces cleaned up as on the transformers
    version Tk-Instruct pins (`clean_up_spaces`)."""

    def token_ids(texts: Sequence[str]):
        # In chunks: the ids of a whole dataset's prompts at once are hundreds of MB of Python ints.
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            yield from tokenizer(list(texts[start:start + TOKENIZE_CHUNK]))["input_ids"]

    def count_tokens(texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in token_ids(texts)]

    def cut(texts: Sequence[str], limit: int) -> list[str]:
        return [clean_up_spaces(tokenizer.decode(ids[:limit], skip_special_tokens=True, clean_up_tokenization_spaces=False))
                for ids in token_ids(texts)]

    return Truncation(max_source_length, count_tokens, cut)


def choose_reference(instance: Instance, rng: random.Random) -> str:
    """The training target: one reference chosen at random (seeded), as the official collator does."""
    return rng.choice(instance.references)
