"""Per-instance scores of a sweep's cells, from their predictions artifacts (no retraining: a sweep
run with an older version of ablate is compared too), and the settings `ablate compare` names.

Each finished cell logged `predictions/<encoding>.jsonl` ({id, task, prediction, references} per
test instance, see ablate.evaluate.prediction_records); each line is scored again with the
official per-instance metric (ablate.metrics.score_one), x100 as the report's numbers are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ablate import results
from ablate.status import CellStatus
from ablate.track.retry import DEFAULT_RETRY_SECONDS
from ablate.analyse.collect import CellRecord, SweepRecords
from ablate.errors import AblateError


@dataclass(frozen=True)
class InstanceScores:
    """One cell's scores on one test encoding, one entry per test instance (metric -> 0-100)."""

    ids: tuple[str, ...]
    tasks: tuple[str, ...]
    scores: dict[str, np.ndarray]


def score_records(records: Sequence[dict], evaluator: str = "generate") -> InstanceScores:
    """Each instance's scores from an evaluator's records (its `instance_scores`: generation's
    predictions are scored again with the official metrics; rank's records carry theirs)."""
    from ablate.evaluators import evaluator_of

    per_metric = evaluator_of(evaluator).instance_scores(records)
    return InstanceScores(ids=tuple(str(r["id"]) for r in records), tasks=tuple(str(r["task"]) for r in records),
                          scores={m: np.array(v) for m, v in per_metric.items()})


def parse_predictions(text: str, where: str, fields: frozenset[str] = frozenset({"prediction", "references"})
                      ) -> list[dict]:
    """The records of a predictions artifact: each has an id, a task and the evaluator's `fields`."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not {"id", "task", *fields} <= set(record):
                raise KeyError
        except (json.JSONDecodeError, KeyError, TypeError):
            raise AblateError(f"line {number} of the predictions artifact is not a prediction record.", file=where,
                              fix="re-run the cell (ablate sweep SPEC --force) to log its predictions again.") from None
        records.append(record)
    return records


def cell_scores_reader(tracking_uri: str, metric: str = "rougeL", retry_seconds: float = DEFAULT_RETRY_SECONDS
                       ) -> Callable[[CellRecord, str], InstanceScores | None]:
    """A function (cell record, test encoding) -> its instance scores of the evaluator that
    declares `metric`, read from MLflow, or None when the cell has no records for that encoding."""
    from ablate.evaluators import evaluator_of_metric
    from ablate.track.retry import RetryPolicy
    from ablate.track.store import Store

    store = Store(tracking_uri, RetryPolicy(retry_seconds))
    evaluator = evaluator_of_metric(metric)
    cache: dict[tuple[str, str], InstanceScores | None] = {}

    def read(record: CellRecord, encoding: str) -> InstanceScores | None:
        if record.status != CellStatus.DONE or record.run_id is None or evaluator.instance_scores is None:
            return None  # an evaluator without per-instance scores (abstention, lm_eval): nothing to pair
        if (record.run_id, encoding) not in cache:
            artifact = results.predictions_artifact(encoding, evaluator.kind)
            text = store.read_text(record.run_id, artifact)
            cache[record.run_id, encoding] = None if text is None else score_records(
                parse_predictions(text, f"run {record.run_id}: {artifact}", evaluator.record_fields), evaluator.kind)
        return cache[record.run_id, encoding]

    return read


# -- settings ----------------------------------------------------------------------------------
def _setting_of(record: CellRecord) -> tuple:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in record.cell.axis_values.items() if k != "seed"))


def setting_label(record: CellRecord) -> str:
    from ablate.plan import format_value

    parts = [f"{k}={format_value(v)}" for k, v in record.cell.axis_values.items() if k != "seed"]
    return ", ".join(parts) or "(the only setting)"


def _selector_parts(selector: str, axes: list[str]) -> list[str]:
    """`axis=value` parts of a selector: split at the commas that start another axis, so a block's
    value keeps its own (train.lora=r=16,alpha=32,model=t5-tiny is two parts)."""
    import re

    if not axes:
        return [part.strip() for part in selector.split(",") if part.strip()]
    starts = "|".join(re.escape(a) for a in sorted(axes, key=len, reverse=True))
    return [part.strip() for part in re.split(rf",\s*(?=(?:{starts})\s*=)", selector) if part.strip()]


def _value_matches(value: str, actual) -> bool:
    """A value as `format_value` prints it, as JSON, as YAML (`{r: 16, alpha: 32}`, `null`), or a
    clusters list by its count."""
    import yaml

    from ablate.plan import format_value

    if value in (format_value(actual), json.dumps(actual)) or (isinstance(actual, list) and value == str(len(actual))):
        return True
    try:
        return yaml.safe_load(value) == actual
    except yaml.YAMLError:
        return False


def _matches(record: CellRecord, selector: str, axes: list[str]) -> bool:
    if selector in (record.cell.id, record.cell.name):
        return True
    wanted = _selector_parts(selector, axes)
    if not wanted or not all("=" in part for part in wanted):
        return False
    for part in wanted:
        axis, value = (s.strip() for s in part.split("=", 1))
        if axis not in record.cell.axis_values or not _value_matches(value, record.cell.axis_values[axis]):
            return False
    return True


def select_setting(sweep: SweepRecords, selector: str, field: str) -> list[CellRecord]:
    """The cells (one per seed) of the setting `selector` names: a cell id, a cell name, or
    `axis=value[,axis=value]` (a clusters list by its count or as a+b+c). Exactly one setting."""
    axes = sorted({k for r in sweep.cells for k in r.cell.axis_values if k != "seed"})
    found = [r for r in sweep.cells if _matches(r, selector, [*axes, "seed"])]
    if len(found) == 1 and selector in (found[0].cell.id, found[0].cell.name):
        # A single cell names its setting: every seed of it.
        found = [r for r in sweep.cells if _setting_of(r) == _setting_of(found[0])]
    settings = list(dict.fromkeys(_setting_of(r) for r in found))
    if not found:
        reason, fix = _why_no_cell(sweep, selector, axes)
        raise AblateError(f"'{selector}' names no cell of sweep '{sweep.experiment}'{reason}.", field=field,
                          fix=fix or f"give a cell id, a cell name or axis=value with an axis of the sweep "
                                     f"({', '.join(axes) or 'none'}).")
    if len(settings) > 1:
        labels = list(dict.fromkeys(setting_label(r) for r in found))
        raise AblateError(f"'{selector}' matches {len(settings)} settings: {'; '.join(labels[:6])}.", field=field,
                          fix="add axis=value pairs, comma-separated, until one setting is left.")
    return found


def _why_no_cell(sweep: SweepRecords, selector: str, axes: list[str]) -> tuple[str, str | None]:
    """Why `axis=value` pairs match no cell: an axis the sweep does not have, or a value it never
    takes ("" when each pair matches some cell, and only their combination is missing)."""
    from ablate.errors import did_you_mean
    from ablate.plan import format_value

    parts = _selector_parts(selector, axes)
    if not parts or not all("=" in part for part in parts):
        return "", None
    for part in parts:
        axis, value = (side.strip() for side in part.split("=", 1))
        if axis not in [*axes, "seed"]:
            return f": it has no axis '{axis}'", f"name an axis of the sweep. {did_you_mean(axis, [*axes, 'seed'])}"
        if not any(axis in r.cell.axis_values and _value_matches(value, r.cell.axis_values[axis]) for r in sweep.cells):
            taken = list(dict.fromkeys(format_value(r.cell.axis_values[axis]) for r in sweep.cells
                                       if axis in r.cell.axis_values))
            return (f": axis '{axis}' never takes the value {value} in it",
                    f"give one of the values of '{axis}' in the sweep: {', '.join(taken)}.")
    return "", None


def paired_scores(a_cells: Sequence[CellRecord], b_cells: Sequence[CellRecord], encoding: str, metric: str,
                  read: Callable[[CellRecord, str], InstanceScores | None]) -> dict:
    """A and B aligned on the seeds both have scores for and the test instances both scored:
    {"a", "b": seeds x instances arrays, "tasks", "seeds", "ids", "skipped": [cell names]}."""
    def by_seed(cells):
        found, skipped = {}, []
        for record in cells:
            scores = read(record, encoding)
            if scores is None:
                skipped.append(record.cell.name)
            else:
                found[record.cell.settings.seed] = scores
        return found, skipped

    a, skipped_a = by_seed(a_cells)
    b, skipped_b = by_seed(b_cells)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"a": None, "b": None, "tasks": [], "seeds": [], "ids": [], "skipped": skipped_a + skipped_b}
    shared = set.intersection(*(set(a[s].ids) for s in seeds), *(set(b[s].ids) for s in seeds))
    first = a[seeds[0]]
    ids = [i for i in first.ids if i in shared]
    task_of = dict(zip(first.ids, first.tasks))

    def matrix(side):
        rows = []
        for s in seeds:
            position = {i: n for n, i in enumerate(side[s].ids)}
            rows.append(side[s].scores[metric][[position[i] for i in ids]])
        return np.array(rows)

    return {"a": matrix(a), "b": matrix(b), "tasks": [task_of[i] for i in ids], "seeds": seeds, "ids": ids,
            "skipped": skipped_a + skipped_b}
