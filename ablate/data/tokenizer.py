"""Word-level tokenizers built with HF `tokenizers` from a task suite's own vocabulary.

Byte-level tokens make a prompt ~4x longer and a tiny T5 from scratch learns far less in the
same CPU time (word-level prompts are ~4x shorter and train ~3x more steps per second on a
2-core CPU), so models built from config use a word-level vocabulary.
Special ids follow T5: pad=0, eos=1, unk=2.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Iterable

TEMPLATE_TEXT = ("Definition: Positive Example 1 - Negative Example 2 - Input: Output: Explanation: "
                 "Now complete the following example - 0 1 2 3 4 5 6 7 8 9 . , ; : ! ? ' \" ( ) [ ] -")
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def suite_texts(tasks: Iterable[tuple[str, dict]]) -> Iterable[str]:
    """Every string a prompt or target can hold, from raw SuperNI task objects."""
    yield TEMPLATE_TEXT
    for name, task in tasks:
        yield name
        yield from task["Definition"] if isinstance(task["Definition"], list) else [task["Definition"]]
        for example in task.get("Positive Examples", []) + task.get("Negative Examples", []):
            yield example["input"]
            yield example["output"]
            yield example.get("explanation") or ""
        for instance in task["Instances"]:
            yield instance["input"]
            yield from instance["output"]


def build_word_tokenizer(texts: Iterable[str], max_vocab: int = 32000):
    """A WordLevel `tokenizers.Tokenizer` over the words and punctuation of `texts`, with an EOS post-processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=max_vocab, min_frequency=1,
                                        special_tokens=list(SPECIAL_TOKENS))
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    return tokenizer


TOKENIZER_FIX = "give a tokenizer.json saved by HF tokenizers (e.g. the one `ablate synth` writes), or a model folder."


def check_tokenizer_file(path: str | Path, field: str | None = None) -> None:
    """A tokenizer.json must be a regular file that HF `tokenizers` can build a tokenizer from: an
    AblateError naming the file otherwise (the library's own error is a Rust panic message or a
    hang on a FIFO). Fast: `tokenizers` alone, no transformers import."""
    from tokenizers import Tokenizer

    from ablate.errors import AblateError
    from ablate.files import read_text

    text = read_text(path, "the tokenizer file", TOKENIZER_FIX, field)
    try:
        Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for every malformed file
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise AblateError(f"is not a tokenizer file ({reason}).", file=str(path), field=field,
                          fix=TOKENIZER_FIX) from None


def as_hf_tokenizer(tokenizer_file: str, field: str | None = None):
    """Wrap a saved tokenizer.json as a transformers tokenizer (pad/eos/unk set); a file that is
    not one is an AblateError naming it."""
    from transformers import PreTrainedTokenizerFast

    check_tokenizer_file(tokenizer_file, field)
    return PreTrainedTokenizerFast(tokenizer_file=tokenizer_file, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")


def task_dir_tokenizer(task_dir: Path, cache_dir: Path):
    """The word-level tokenizer of a task directory: its own tokenizer.json (the synthetic suite ships
    one), else one built once from all its task files and cached by the directory's fingerprint.
    Returns the tokenizer and an id (its content hash) for the tokenized-data cache."""
    from ablate.data.tasks import fingerprint_task_dir
    from ablate.files import read_bytes, read_json

    tokenizer_file = task_dir / "tokenizer.json"
    if not (tokenizer_file.exists() or tokenizer_file.is_symlink()):
        tokenizer_file = cache_dir / "tokenizers" / f"{fingerprint_task_dir(task_dir)}.json"
        if not tokenizer_file.is_file():
            tokenizer_file.parent.mkdir(parents=True, exist_ok=True)
            fix = "repair the task file (UTF-8 JSON in the SuperNI task format)."
            raw_tasks = ((p.stem, read_json(p, "the task file", fix))
                         for p in sorted((task_dir / "tasks").glob("*.json")))
            scratch = tokenizer_file.with_suffix(f".tmp{os.getpid()}-{time.time_ns()}")  # one per builder
            build_word_tokenizer(suite_texts(raw_tasks)).save(str(scratch))
            scratch.replace(tokenizer_file)  # atomic: concurrent cells never read half a file
    tokenizer = as_hf_tokenizer(str(tokenizer_file))
    content = read_bytes(tokenizer_file, "the tokenizer file", TOKENIZER_FIX)
    return tokenizer, hashlib.sha256(content).hexdigest()[:16]
