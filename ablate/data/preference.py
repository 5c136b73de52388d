"""Preference pairs (prompt, chosen, rejected): what the `dpo` stage trains on and the
`preference` evaluator scores.

From the task suite (any SuperNI-format tasks, the built-in synthetic suite included), a pair is
one instance: the prompt is its Tk-Instruct source (`build_source`, the same text SFT trains on),
`chosen` its reference, and `rejected` a plausible wrong answer: the reference of another
instance of the same task that is not among this instance's references (same format, same
vocabulary, wrong here). On the synthetic suite this rule gives what the issue asks for without a
special case: a question whose truthful answer is "none" (the list holds no word of the class)
gets, as rejected, another instance's answer, which names a member of the class, one the list
does not hold: a hallucination. Yes/no tasks get the other answer; counts another count.

From a file: JSONL rows `{"prompt", "chosen", "rejected", "task"?, "category"?}`, prompts used as
they are (not re-encoded).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ablate.data.encoding import Truncation, build_sources, parse_encoding
from ablate.data.library import TaskLibrary
from ablate.data.tasks import Instance, Task
from ablate.errors import AblateError

POOL_EXTRA = 16  # instances read beyond those paired, so every task has wrong answers to draw from
PAIR_FIELDS = ("prompt", "chosen", "rejected")
NONE_ANSWER = "none"  # the synthetic suite's truthful abstention (ablate.data.synthetic.NONE_WORD)


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    task: str = "(no task)"
    category: str = "(no category)"
    id: str = ""


def rejected_answer(references: Sequence[str], pool: Sequence[str], rng: random.Random) -> str | None:
    """A wrong answer from `pool` (other instances' references): one not among `references`,
    drawn with `rng`; None when the pool has none."""
    right = {r.strip() for r in references}
    candidates = sorted({p.strip() for p in pool} - right - {""})
    return rng.choice(candidates) if candidates else None


def _task_pairs(task: Task, instances: Sequence[Instance], pool: Sequence[str], encoding: str,
                truncation: Truncation | None, rng: random.Random) -> list[PreferencePair]:
    answered = []  # (instance, chosen, rejected), the seeded draws in the order they always had
    for instance in instances:
        wrong = rejected_answer(instance.references, pool, rng)
        if wrong is None:
            continue
        answered.append((instance, rng.choice(instance.references), wrong))
    sources = build_sources([(task, instance) for instance, _, _ in answered], parse_encoding(encoding), truncation)
    return [PreferencePair(source, chosen, wrong, task.name, task.category, instance.id)
            for source, (instance, chosen, wrong) in zip(sources, answered)]


def pairs_from_tasks(library: TaskLibrary, tasks: Sequence[str], count: int, encoding: str,
                     truncation: Truncation | None, seed: int) -> list[PreferencePair]:
    """`count` pairs spread evenly over `tasks` (seeded instances of each; fewer where a task has
    fewer instances or no wrong answer to draw)."""
    if not tasks:
        return []
    found = []
    for index, name in enumerate(tasks):
        wanted = count // len(tasks) + (1 if index < count % len(tasks) else 0)
        if wanted == 0:
            continue
        rng = random.Random(f"{seed}:preference:{name}")
        available = library.instance_count(name)
        positions = rng.sample(range(available), min(available, wanted + POOL_EXTRA))
        task = library.subset(name, positions)
        pool = [r for instance in task.instances for r in instance.references]
        found += _task_pairs(task, task.instances[:wanted], pool, encoding, truncation, rng)
    return found


def pairs_from_test(test_pairs: Sequence[tuple[Task, Instance]], sources: Sequence[str], seed: int) -> list[PreferencePair]:
    """Held-out pairs: one per test instance (its source already encoded), the wrong answer drawn
    from the other test instances of its task."""
    pools: dict[str, list[str]] = {}
    for task, instance in test_pairs:
        pools.setdefault(task.name, []).extend(instance.references)
    rng = random.Random(f"{seed}:preference:held-out")
    found = []
    for (task, instance), source in zip(test_pairs, sources):
        wrong = rejected_answer(instance.references, pools[task.name], rng)
        if wrong is not None:
            found.append(PreferencePair(source, rng.choice(instance.references), wrong, task.name, task.category,
                                        instance.id))
    return found


PAIRS_FIX = 'write one {"prompt": ..., "chosen": ..., "rejected": ...} object per line (non-empty strings).'


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """Every row of a JSONL preference file; an AblateError naming the file, the first bad line
    and what is wrong with it. Read as every user file is (ablate.files: a regular UTF-8 file)."""
    from ablate.files import read_text

    pairs = []
    lines = read_text(path, "the preference file", PAIRS_FIX).splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _pair_row(line, path, number)
        pairs.append(PreferencePair(row["prompt"], row["chosen"], row["rejected"], str(row.get("task") or "(no task)"),
                                    str(row.get("category") or "(no category)"), f"{Path(path).name}-{number}"))
    return pairs


def _pair_row(line: str, path: str | Path, number: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        problem = "is JSON nested too deeply to read"
    else:
        wrong = [k for k in PAIR_FIELDS if not isinstance(row.get(k), str) or not row[k].strip()] \
            if isinstance(row, dict) else None
        if wrong is None:
            problem = f"is {_json_kind(row)}"
        elif wrong:
            key = wrong[0]
            problem = (f"has no '{key}'" if key not in row else f"has an empty '{key}'" if isinstance(row[key], str)
                       else f"has '{key}' as {_json_kind(row[key])}, not a string")
        else:
            return row
    raise AblateError(f"line {number} is not a JSON object with non-empty strings prompt, chosen and rejected: it "
                      f"{problem}.", file=str(path), field=f"line {number}", fix=PAIRS_FIX)


def _json_kind(value) -> str:
    """What a JSON value is, in JSON's words."""
    kinds = ((bool, "a boolean"), ((int, float), "a number"), (list, "a list"), (dict, "an object"), (str, "a string"))
    return "null" if value is None else next(word for types, word in kinds if isinstance(value, types))


def sample_pairs(pairs: Sequence[PreferencePair], count: int, seed: int) -> list[PreferencePair]:
    """A seeded sample of `count` pairs (all of them, shuffled, when there are fewer)."""
    order = list(range(len(pairs)))
    random.Random(f"{seed}:preference:sample").shuffle(order)
    return [pairs[i] for i in order[:count]]


def is_abstention_question(references: Sequence[str]) -> bool:
    """A question whose truthful answer is 'none' (nothing in the input fits)."""
    return any(r.strip().lower() == NONE_ANSWER for r in references)


def existing_preference_file(value: str | None, otherwise: str) -> str | None:
    """A stage's `source`: a preference file that exists, or None (the stage then does `otherwise`)."""
    from ablate.files import check_regular_file

    if value is not None:
        try:
            check_regular_file(value, "the preference file", "")
        except AblateError as exc:  # it does not exist, is a folder, a FIFO, a broken link...
            reason = exc.message.removeprefix("cannot read the preference file: ").rstrip(".")
            raise ValueError(f"preference file '{value}': {reason}; give a JSONL file of {{prompt, chosen, "
                             f"rejected}} rows, or null to {otherwise}") from None
    return value
