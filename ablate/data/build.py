"""A cell's data as HF `datasets`: encoded prompts, targets, and tokenized, cached tensors."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import uuid
from pathlib import Path
from typing import Mapping, Sequence

from ablate.data.encoding import Truncation, build_sources, choose_reference, parse_encoding
from ablate.data.clusters import cluster_label
from ablate.data.select import TaskSelection, eval_positions, sample_positions
from ablate.data.library import TaskLibrary
from ablate.data.tasks import Instance, Task
from ablate.errors import AblateError


def build_train_dataset(library: TaskLibrary, selection: TaskSelection, instances_per_task: int,
                        encoding: str, truncation: Truncation | None, seed: int, options_max: int | None = None):
    """Training pairs: Tk-Instruct source and one seeded reference per sampled instance. With
    `options_max`, sources of instances with answer options end with FLAN's OPTIONS suffix."""
    from datasets import Dataset

    from ablate.data.options import instance_options, instance_with_options

    rng = random.Random(f"{seed}:targets")
    pairs, targets = [], []
    for name in selection.train_tasks:
        # Only the sampled instances are read into objects (a release's task holds thousands).
        task = library.subset(name, sample_positions(name, library.instance_count(name), instances_per_task, seed))
        label_set = library.options(name, options_max) if options_max else None
        for instance in task.instances:
            if options_max:
                instance = instance_with_options(instance, instance_options(instance, label_set))
            pairs.append((task, instance))
            targets.append(choose_reference(instance, rng))
    sources = build_sources(pairs, parse_encoding(encoding), truncation)
    return Dataset.from_list([{"id": instance.id, "task": task.name, "source": source, "target": target}
                              for (task, instance), source, target in zip(pairs, sources, targets)])


def eval_pairs(library: TaskLibrary, test_tasks: Sequence[str], instances_per_task: int) -> list[tuple[Task, Instance]]:
    """(task, instance) of the evaluation set: the first N instances of each test task. A test
    task with no instances (it cannot be scored) and an empty test set are AblateErrors."""
    if not test_tasks:
        raise AblateError("the split lists no test tasks, so there is nothing to score.", file=str(library.root),
                          field="test_tasks.txt", fix="list the test tasks in splits/<split>/test_tasks.txt.")
    pairs = []
    for name in test_tasks:
        if not library.instance_count(name):
            raise AblateError(f"test task '{name}' has no instances, so it cannot be scored.",
                              file=str(library.root / "tasks" / f"{name}.json"), field="Instances",
                              fix="give it instances, or leave it out of the split's test_tasks.txt.")
        # Only the evaluated instances are read into objects: a release's test tasks hold thousands more.
        task = library.subset(name, eval_positions(library.instance_count(name), instances_per_task))
        pairs += [(task, instance) for instance in task.instances]
    return pairs


def build_test_dataset(pairs: Sequence[tuple[Task, Instance]], encoding: str, truncation: Truncation | None,
                       cluster_of: Mapping[str, str], options: Sequence[Sequence[str] | None] | None = None):
    """Evaluation rows of test pairs, with every reference; tasks outside every cluster are
    labelled "(no cluster)" and scored like the others. With `options` (one list or None per
    pair), sources end with FLAN's OPTIONS suffix where a pair has options."""
    from datasets import Dataset

    from ablate.data.options import instance_with_options

    options = options if options is not None else [None] * len(pairs)
    sources = build_sources([(task, instance_with_options(instance, row_options) if row_options else instance)
                             for (task, instance), row_options in zip(pairs, options)], parse_encoding(encoding), truncation)
    rows = [{"id": instance.id, "task": task.name, "category": task.category,
             "cluster": cluster_label(cluster_of, task.category), "source": source,
             "references": list(instance.references)} for (task, instance), source in zip(pairs, sources)]
    return Dataset.from_list(rows)


def _content_hash(dataset, tokenizer_id: str, max_source: int, max_target: int, causal: bool) -> str:
    digest = hashlib.sha256(f"{tokenizer_id}:{max_source}:{max_target}:{'causal' if causal else 'seq2seq'}".encode())
    for column in ("source", "target"):
        if column in dataset.column_names:
            digest.update(json.dumps(list(dataset[column])).encode())
    return digest.hexdigest()[:20]


def source_ids(tokenizer, sources: list[str], max_source: int) -> list[list[int]]:
    """Token ids of prompts, cut to `max_source` tokens (with the tokenizer's own special tokens)."""
    return tokenizer(sources, max_length=max_source, truncation=True)["input_ids"]


def causal_example(source: list[int], target: list[int], eos_token_id: int) -> dict[str, list[int]]:
    """One decoder-only training sequence: source, then target and EOS; the loss covers the target
    and EOS only (source positions are labelled -100)."""
    ids = [*source, *target, eos_token_id]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(source) + [*target, eos_token_id]}


def encode_pairs(tokenizer, sources: list[str], targets: list[str], max_source: int, max_target: int,
                 causal: bool) -> dict[str, list[list[int]]]:
    """`input_ids`, `attention_mask` and `labels` of (source, target) pairs: what training feeds the
    model, and (ablate.rank) what scores an answer option. Labels other than -100 are the tokens the
    loss is on: an encoder-decoder model's target as its tokenizer encodes a target (EOS included
    where the tokenizer adds it), cut to `max_target`; a decoder-only model's target (at most
    `max_target` tokens) and EOS after the source (`causal_example`)."""
    if causal:
        cut_sources = source_ids(tokenizer, sources, max_source)
        cut_targets = tokenizer(targets, add_special_tokens=False, max_length=max_target,
                                truncation=True)["input_ids"]
        examples = [causal_example(s, t, tokenizer.eos_token_id) for s, t in zip(cut_sources, cut_targets)]
        return {key: [e[key] for e in examples] for key in ("input_ids", "attention_mask", "labels")}
    encoded = dict(tokenizer(sources, max_length=max_source, truncation=True))
    encoded["labels"] = tokenizer(text_target=targets, max_length=max_target, truncation=True)["input_ids"]
    return encoded


def tokenize_dataset(dataset, tokenizer, tokenizer_id: str, max_source: int, max_target: int,
                     cache_dir: Path | None, causal: bool = False):
    """Token ids for sources (and targets), cached on disk by content hash.

    Encoder-decoder models get `input_ids` (the source) and `labels` (the target); decoder-only
    models one sequence per example (`causal_example`), the source cut to `max_source` tokens by
    the same rule before the target (at most `max_target` tokens) is appended."""
    from datasets import load_from_disk

    target = None
    if cache_dir is not None:
        target = cache_dir / "tokenized" / _content_hash(dataset, tokenizer_id, max_source, max_target, causal)
        if (target / "dataset_info.json").is_file():
            return load_from_disk(str(target))

    def encode(batch):
        if causal or "target" in batch:
            return encode_pairs(tokenizer, batch["source"], batch["target"], max_source, max_target, causal)
        return tokenizer(batch["source"], max_length=max_source, truncation=True)

    tokenized = dataset.map(encode, batched=True)
    if target is not None:
        # A name of this process's own (not the global `random`, whose state is the cells' business).
        scratch = target.with_name(f"{target.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tokenized.save_to_disk(str(scratch))
        try:
            scratch.rename(target)
        except OSError:  # another cell saved the same content first: keep theirs, drop ours
            shutil.rmtree(scratch, ignore_errors=True)
        return load_from_disk(str(target)) if target.is_dir() else tokenized
    return tokenized
