"""Reads a task's documents from a JSONL file beside this folder's YAMLs (lm-eval's
`custom_dataset`: the YAML names the file in `dataset_kwargs`, so the folder can move)."""

import json
from pathlib import Path

import datasets


def load_jsonl(data_file: str, **_metadata) -> dict:
    rows = [json.loads(line) for line in (Path(__file__).parent / data_file).read_text().splitlines() if line]
    return {"test": datasets.Dataset.from_list(rows)}
