"""Evaluation: predictions for a cell's test rows (greedy generation or a baseline), scored officially."""

from __future__ import annotations

from typing import Mapping, Sequence

from ablate.data.tasks import Instance, Task
from ablate.metrics import evaluate_predictions


def generate_predictions(model, tokenizer, sources: Sequence[str], *, max_source_length: int,
                         max_new_tokens: int, num_beams: int, batch_size: int) -> list[str]:
    """Decoded generations for `sources`, in order (greedy when num_beams is 1), on the model's device.

    A decoder-only model reads its prompt left-padded (so every prompt ends where generation
    starts) and only the new tokens are decoded; its prompts are cut exactly as in training."""
    import torch

    causal = not model.config.is_encoder_decoder
    model.eval()
    predictions: list[str] = []
    tokenizer.padding_side = "left" if causal else "right"
    try:
        with torch.no_grad():
            for start in range(0, len(sources), batch_size):
                batch = tokenizer(list(sources[start:start + batch_size]), max_length=max_source_length,
                                  truncation=True, padding=True, return_tensors="pt").to(model.device)
                output = model.generate(**batch, max_new_tokens=max_new_tokens, num_beams=num_beams,
                                        do_sample=False, pad_token_id=tokenizer.pad_token_id)
                if causal:
                    output = output[:, batch["input_ids"].shape[1]:]
                predictions.extend(t.strip() for t in tokenizer.batch_decode(output, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = "right"
    return predictions


def score_pairs(pairs: Sequence[tuple[Task, Instance]], predictions: Sequence[str], cluster_of: Mapping[str, str]) -> dict:
    """Official metrics of predictions for (task, instance) pairs, grouped by task, category and cluster."""
    from ablate.data.clusters import cluster_label

    return evaluate_predictions(predictions, [i.references for _, i in pairs], [t.name for t, _ in pairs],
                                [t.category for t, _ in pairs], [cluster_label(cluster_of, t.category) for t, _ in pairs])


def score_rows(rows, predictions: Sequence[str]) -> dict:
    """Official metrics of predictions for test rows (columns task, category, cluster, references)."""
    return evaluate_predictions(
        predictions, rows["references"], rows["task"], rows["category"],
        clusters=rows["cluster"],
    )


def prediction_records(rows, predictions: Sequence[str]) -> list[dict]:
    """One JSON-able record per instance, for the predictions artifact."""
    return [{"id": i, "task": t, "prediction": p, "references": r}
            for i, t, p, r in zip(rows["id"], rows["task"], predictions, rows["references"])]
