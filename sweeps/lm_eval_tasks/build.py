"""Writes this folder's lm-eval task data from ablate's built-in synthetic suite (seed 0), so that
sweeps/clusters_lm_eval.yaml scores each cell on lm-eval tasks whose words its tokenizer knows:

    synth_nli        multiple_choice   yes/no: does the list hold a tool / a city (the nli cluster's tasks)
    synth_count      multiple_choice   how many fruits / animals, as a number word (closed_book_qa's)
    synth_first      generate_until    the first colour / tool in the list, or none (commonsense's)

Each prompt is the SuperNI `def` encoding of ablate's training (Definition, then Input/Output).
The documents are the suite's instances after the first 100 (those SuperNI's test set takes).

    python sweeps/lm_eval_tasks/build.py
"""

import json
from pathlib import Path

from ablate.data.synthetic import NUMBER_WORDS, generate_suite

HERE = Path(__file__).parent
TASKS = {
    "synth_nli": ["task028_synthetic_nli_contains_tool", "task029_synthetic_nli_contains_city"],
    "synth_count": ["task001_synthetic_closed_book_qa_count_animal", "task002_synthetic_closed_book_qa_count_fruit"],
    "synth_first": ["task009_synthetic_commonsense_first_colour", "task010_synthetic_commonsense_first_tool"],
}
CHOICES = {"synth_nli": ["yes", "no"], "synth_count": list(NUMBER_WORDS)}
SKIP, PER_TASK = 100, 50


def documents(suite: dict, name: str) -> list[dict]:
    """The tasks' documents taken in turn, so that lm-eval's `limit` (the first N) samples each."""
    rows = []
    for instances in zip(*(suite[t]["Instances"][SKIP:SKIP + PER_TASK] for t in TASKS[name])):
        for task_name, instance in zip(TASKS[name], instances):
            row = {"definition": suite[task_name]["Definition"][0], "input": instance["input"],
                   "target": instance["output"][0]}
            if name in CHOICES:
                row |= {"choices": CHOICES[name], "label": CHOICES[name].index(instance["output"][0])}
            rows.append(row)
    return rows


def main() -> None:
    suite = generate_suite(seed=0)
    (HERE / "data").mkdir(exist_ok=True)
    for name in TASKS:
        rows = documents(suite, name)
        (HERE / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{name}: {len(rows)} documents")


if __name__ == "__main__":
    main()
