"""Rank classification (FLAN's scoring of classification tasks): the model ranks an instance's
answer options by likelihood instead of generating an answer.

The score of an option is the sum of the log-probabilities of its tokens given the prompt, and the
tokens are exactly those training puts the loss on when the option is the target
(`ablate.data.build.encode_pairs`): for an encoder-decoder model the target as its tokenizer
encodes it (EOS included), for a decoder-only model the target and EOS after the source, the
source cut to `max_source_length` by the same rule. The choice is the argmax, ties to the first
option in sorted order. Per instance:

- `acc`: the choice is one of the instance's references (stripped);
- `acc_norm`: the same, choosing by score / token count (longer options are not penalised);
- `ll_correct`: the mean log-likelihood per token of the best reference (continuous; references
  that are not options are scored too).

Shares are reported x100 and rounded to 4 decimals like the official metrics (ablate.metrics);
`ll_correct` is a mean log-likelihood in nats per token, not scaled. Where the options come from
(the task file, or the task's label set) is ablate.data.options, whose functions this module
re-exports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ablate.data.options import instance_options, instance_with_options, options_in_prompt, task_options  # noqa: F401
from ablate.metrics import category_key

RANK_SHARES = ("acc", "acc_norm")  # x100
RANK_METRICS = (*RANK_SHARES, "ll_correct")


class OptionScore(NamedTuple):
    logprob: float  # sum of the log-probabilities of the option's tokens given the prompt
    tokens: int  # how many tokens were scored (the target's loss tokens, EOS included)


def _padded(sequences: Sequence[Sequence[int]], value: int):
    import torch

    width = max(len(s) for s in sequences)
    return torch.tensor([[*s, *[value] * (width - len(s))] for s in sequences], dtype=torch.long)


def _token_logprobs(logits, labels):
    """Per-sequence sum of log p(label) and count over positions whose label is not -100."""
    import torch

    mask = labels != -100
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1), mask.sum(-1)


def score_options(model, tokenizer, sources: Sequence[str], options_per_source: Sequence[Sequence[str]], *,
                  max_source_length: int, max_target_length: int, batch_size: int,
                  device=None) -> list[list[OptionScore]]:
    """The score of every option of every source, in order: one list per source, one OptionScore
    per option. Batches of `batch_size` (source, option) sequences run on `device` (default: the
    model's); an encoder-decoder model encodes each source once per batch."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    from ablate.data.build import encode_pairs

    if len(sources) != len(options_per_source):
        raise ValueError(f"{len(sources)} sources for {len(options_per_source)} option lists")
    causal = not model.config.is_encoder_decoder
    device = model.device if device is None else torch.device(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    owners = [i for i, options in enumerate(options_per_source) for _ in options]
    if not owners:
        return [[] for _ in sources]
    encoded = encode_pairs(tokenizer, [sources[i] for i in owners],
                           [option for options in options_per_source for option in options],
                           max_source_length, max_target_length, causal)
    ids, labels = encoded["input_ids"], encoded["labels"]
    # Longest first, so a batch pads little; an encoder-decoder model's options of one source stay together.
    order = sorted(range(len(owners)), key=lambda k: (-len(ids[k]), owners[k]) if not causal
                   else -(len(ids[k]) + len(labels[k])))
    flat: list[OptionScore | None] = [None] * len(owners)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                if causal:
                    input_ids = _padded([ids[k] for k in chunk], pad).to(device)
                    mask = _padded([[1] * len(ids[k]) for k in chunk], 0).to(device)
                    target = _padded([labels[k] for k in chunk], -100).to(device)
                    logits = model(input_ids=input_ids, attention_mask=mask).logits
                    total, count = _token_logprobs(logits[:, :-1], target[:, 1:])
                else:
                    pair_of = {owners[k]: k for k in chunk}  # each source once (its options share its ids)
                    row_of = {owner: row for row, owner in enumerate(pair_of)}
                    input_ids = _padded([ids[k] for k in pair_of.values()], pad).to(device)
                    mask = _padded([[1] * len(ids[k]) for k in pair_of.values()], 0).to(device)
                    hidden = model.get_encoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state
                    rows = torch.tensor([row_of[owners[k]] for k in chunk], device=device)
                    target = _padded([labels[k] for k in chunk], -100).to(device)
                    # With labels, the model makes its decoder inputs from them as in training.
                    logits = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[rows]),
                                   attention_mask=mask[rows], labels=target).logits
                    total, count = _token_logprobs(logits, target)
                for k, value, n in zip(chunk, total.tolist(), count.tolist()):
                    flat[k] = OptionScore(float(value), int(n))
    finally:
        model.train(was_training)
    scores: list[list[OptionScore]] = [[] for _ in sources]
    for owner, score in zip(owners, flat):
        scores[owner].append(score)
    return scores


def choose(options: Sequence[str], values: Sequence[float]) -> str:
    """The option with the highest value; ties go to the first option in sorted order."""
    if not options:
        raise ValueError("no options to choose from")
    best = max(values)
    return min(option for option, value in zip(options, values) if value == best)


def _per_token(score: OptionScore) -> float:
    return score.logprob / max(score.tokens, 1)


def judge(options: Sequence[str], scores: Mapping[str, OptionScore], references: Sequence[str]) -> dict:
    """Per-instance rank metrics (each in [0, 1], ll_correct a log-likelihood per token) and the
    choices, from the scores of the options and of every (stripped) reference."""
    wanted = {reference.strip() for reference in references}
    choice = choose(options, [scores[o].logprob for o in options])
    choice_norm = choose(options, [_per_token(scores[o]) for o in options])
    return {"acc": float(choice in wanted), "acc_norm": float(choice_norm in wanted),
            "ll_correct": max(_per_token(scores[r]) for r in wanted),
            "choice": choice, "choice_norm": choice_norm}


def aggregate_rank(per_instance: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """100 x the mean of acc and acc_norm, the mean of ll_correct; rounded to 4 decimals."""
    if not per_instance:
        raise ValueError("no instances to aggregate")
    n = len(per_instance)
    result = {m: round(100.0 * sum(s[m] for s in per_instance) / n, 4) for m in RANK_SHARES}
    result["ll_correct"] = round(sum(s["ll_correct"] for s in per_instance) / n, 4)
    return result


def _grouped(scores: Sequence[Mapping[str, float]], groups: Sequence[str]) -> dict[str, dict[str, float]]:
    by_group: dict[str, list[Mapping[str, float]]] = defaultdict(list)
    for score, group in zip(scores, groups):
        by_group[group].append(score)
    return {group: aggregate_rank(members) for group, members in sorted(by_group.items())}


def summarize_rank(per_instance: Sequence[Mapping[str, float]], tasks: Sequence[str], categories: Sequence[str],
                   clusters: Sequence[str] | None = None) -> dict:
    """Overall, per-task, per-category (official names, ablate.metrics.category_key) and per-cluster
    rank metrics: the shape of ablate.metrics.evaluate_predictions' result."""
    result: dict = aggregate_rank(per_instance)
    result["per_task"] = _grouped(per_instance, tasks)
    result["per_category"] = _grouped(per_instance, [category_key(c) for c in categories])
    if clusters is not None:
        result["per_cluster"] = _grouped(per_instance, clusters)
    return result


def rank_rows(model, tokenizer, rows: Mapping[str, Sequence], options: Sequence[Sequence[str]], *,
              max_source_length: int, max_target_length: int, batch_size: int,
              device=None) -> tuple[dict, list[dict]]:
    """Rank classification of test rows (columns id, task, category, cluster, source, references:
    ablate.data.build.build_test_dataset) with each row's options. Returns the scores (the shape
    of ablate.metrics.evaluate_predictions' result, metrics RANK_METRICS) and one JSON-able record
    per instance for the predictions artifact: id, task, choice, every option with its score and
    token count, and the references."""
    if len(options) != len(rows["source"]):
        raise ValueError(f"{len(options)} option lists for {len(rows['source'])} rows")
    if any(not row_options for row_options in options):
        raise ValueError("every row needs options; score tasks without options by generation")
    # References that are not options are scored too, for ll_correct.
    extras = [[r for r in dict.fromkeys(ref.strip() for ref in references) if r not in set(row_options)]
              for references, row_options in zip(rows["references"], options)]
    candidates = [[*row_options, *extra] for row_options, extra in zip(options, extras)]
    scored = score_options(model, tokenizer, rows["source"], candidates, max_source_length=max_source_length,
                           max_target_length=max_target_length, batch_size=batch_size, device=device)
    per_instance, records = [], []
    for i, (row_candidates, row_scores) in enumerate(zip(candidates, scored)):
        by_text = dict(zip(row_candidates, row_scores))
        verdict = judge(options[i], by_text, rows["references"][i])
        per_instance.append(verdict)
        records.append({"id": rows["id"][i], "task": rows["task"][i], "choice": verdict["choice"],
                        **{metric: verdict[metric] for metric in RANK_METRICS},
                        "choice_norm": verdict["choice_norm"], "options": list(options[i]),
                        "scores": [by_text[o].logprob for o in options[i]],
                        "tokens": [by_text[o].tokens for o in options[i]],
                        "references": list(rows["references"][i])})
    result = summarize_rank(per_instance, rows["task"], rows["category"], rows.get("cluster"))
    return result, records
