"""One cell as a researcher's plain script: a bare PyTorch loop, batched generation, the official
scores, and `mlflow.log_metrics`; no Ray, no checkpoints, no per-task bookkeeping. The data is the
cell's own (ablate's data layer), so it trains on exactly the batches the ablate cell does, with
the same fused AdamW and one Arrow read per batch (a well-written loop, not a slow one).

    python benchmarks/bare_cell.py SPEC WORKDIR --cell-id ID

Prints one JSON line: the script's own time after its imports (`work_seconds`), and its parts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cell_data, cell_of  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("workdir")
    parser.add_argument("--cell-id", required=True, help="the planned cell's id (`ablate plan SPEC`)")
    args = parser.parse_args()

    import mlflow
    import torch
    from transformers import DataCollatorForSeq2Seq, get_scheduler

    from ablate.metrics import evaluate_predictions
    from ablate.model import build_model
    from ablate.train import _batch_indices, _rows

    from ablate.cell import _tokenizer_for
    from ablate.data.sources import resolve_task_dir

    workdir = Path(args.workdir)
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'bare.db'}")
    mlflow.set_experiment("bare")  # the store exists before the clock starts, as ablate's does
    cell = cell_of(Path(args.spec), workdir, id=args.cell_id)
    # The task data and its tokenizer exist before the clock starts, as the sweep's cells find them.
    data = cell.settings.data
    _tokenizer_for(cell.settings.model, resolve_task_dir(data.source, data.synthetic_seed, workdir / "bare-cache"),
                   workdir / "bare-cache")
    began = time.perf_counter()
    torch.set_num_threads(1)
    train = cell.settings.train
    data = cell_data(cell, workdir / "bare-cache")
    tokenizer = data.tokenizer
    model = build_model(cell.settings.model, len(tokenizer), cell.settings.seed)

    with mlflow.start_run():
        train_began = time.perf_counter()
        optimizer = torch.optim.AdamW(model.parameters(), lr=train.learning_rate, weight_decay=train.weight_decay,
                                      fused=True)
        scheduler = get_scheduler(train.schedule, optimizer, num_warmup_steps=train.warmup_steps,
                                  num_training_steps=train.steps)
        collate = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
        features = data.train_data.select_columns(["input_ids", "attention_mask", "labels"])
        model.train()
        losses = []
        for step in range(train.steps):
            indices = _batch_indices(step, len(features), train.batch_size, cell.settings.seed)
            loss = model(**collate(_rows(features, indices))).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if (step + 1) % train.log_every == 0:
                mlflow.log_metrics({"train_loss": sum(losses) / len(losses)}, step=step + 1)
                losses = []
        train_seconds = time.perf_counter() - train_began

        eval_began = time.perf_counter()
        model.eval()
        sources, predictions = data.test_rows["source"], []
        batch_size = cell.settings.eval.batch_size
        with torch.no_grad():
            for start in range(0, len(sources), batch_size):
                batch = tokenizer(sources[start:start + batch_size], max_length=train.max_source_length,
                                  truncation=True, padding=True, return_tensors="pt")
                output = model.generate(**batch, max_new_tokens=cell.settings.eval.max_new_tokens, do_sample=False)
                predictions += [t.strip() for t in tokenizer.batch_decode(output, skip_special_tokens=True)]
        rows = data.test_rows
        scores = evaluate_predictions(predictions, rows["references"], rows["task"], rows["category"],
                                      clusters=rows["cluster"])
        mlflow.log_metrics({m: scores[m] for m in ("exact_match", "rouge1", "rougeL")})
        eval_seconds = time.perf_counter() - eval_began
    print(json.dumps({"work_seconds": time.perf_counter() - began, "train_seconds": train_seconds,
                      "eval_seconds": eval_seconds, "rougeL": scores["rougeL"]}))


if __name__ == "__main__":
    main()
