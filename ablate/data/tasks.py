"""Super-NaturalInstructions tasks: typed objects and loaders for a task directory.

A task directory holds `tasks/<name>.json` and `splits/<split>/{train,test}_tasks.txt`
(the layout of github.com/allenai/natural-instructions).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict

from ablate.errors import AblateError

KNOWN_KEYS = {"Definition", "Positive Examples", "Negative Examples", "Instances", "Categories"}


class Example(BaseModel):
    """A positive or negative demonstration. `explanation` is None when the key is absent."""

    model_config = ConfigDict(frozen=True)
    input: str
    output: str
    explanation: str | None = None


class Instance(BaseModel):
    """One test or training instance. `options`: the answer options the task file lists for it
    (an optional `"options": [...]` key, stripped, repeats dropped), for rank classification."""

    model_config = ConfigDict(frozen=True)
    id: str
    input: str
    references: tuple[str, ...]
    options: tuple[str, ...] | None = None


class Task(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    definition: str
    positive_examples: tuple[Example, ...]
    negative_examples: tuple[Example, ...]
    instances: tuple[Instance, ...]
    categories: tuple[str, ...]
    metadata: dict[str, Any] = {}

    @property
    def category(self) -> str:
        return self.categories[0]


@dataclass(frozen=True)
class TaskSplit:
    """Task names of one split, in file order."""

    name: str
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]


def _fail(path: Path, field: str, message: str, fix: str) -> AblateError:
    return AblateError(message, file=str(path), field=field, fix=fix)


def _as_str(value: Any, path: Path, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, field, f"expected a string, got {type(value).__name__}.",
                    "write this field as a JSON string.")
    return value


def _parse_examples(raw: Any, path: Path, field: str) -> tuple[Example, ...]:
    if not isinstance(raw, list):
        raise _fail(path, field, "expected a list of {input, output, explanation} objects.",
                    "write the examples as a JSON list (it may be empty).")
    examples = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, dict) or "input" not in item or "output" not in item:
            raise _fail(path, where, "an example needs 'input' and 'output'.",
                        "give every example an 'input' and an 'output' string.")
        explanation = item.get("explanation")
        examples.append(Example(
            input=_as_str(item["input"], path, f"{where}.input"),
            output=_as_str(item["output"], path, f"{where}.output"),
            explanation=None if explanation is None else _as_str(explanation, path, f"{where}.explanation"),
        ))
    return tuple(examples)


def _check_instance(item: Any, i: int, path: Path) -> list:
    """The reference list of instance `i`, once its shape is checked; errors name file and field.
    The common, well-formed case is checked in one expression (the index checks ~10^7 of them)."""
    if type(item) is dict:
        references = item.get("output")
        if type(references) is str:
            references = [references]
        if (type(item.get("input")) is str and type(references) is list and references
                and all(type(reference) is str for reference in references)
                and ("options" not in item or _options_ok(item["options"]))):
            return references
    _raise_instance_error(item, i, path)
    raise AssertionError("unreachable")


def _options_ok(options: Any) -> bool:
    return (type(options) is list and bool(options)
            and all(type(option) is str and option.strip() for option in options))


def instance_options(item: dict) -> tuple[str, ...] | None:
    """The options an instance object lists (checked), stripped, in file order, repeats dropped."""
    if "options" not in item:
        return None
    return tuple(dict.fromkeys(option.strip() for option in item["options"]))


def _raise_instance_error(item: Any, i: int, path: Path) -> None:
    where = f"Instances[{i}]"
    if not isinstance(item, dict):
        raise _fail(path, where, "an instance must be a JSON object with 'input' and 'output'.",
                    "write every instance as {\"id\": ..., \"input\": ..., \"output\": [...]}.")
    missing = [key for key in ("input", "output") if key not in item]
    if missing:
        raise _fail(path, where, f"instance {i} has no {' and no '.join(repr(k) for k in missing)}.",
                    "give every instance an input string and a list of reference outputs.")
    references = item["output"]
    if isinstance(references, str):
        references = [references]
    if not isinstance(references, list):
        raise _fail(path, f"{where}.output", f"expected a list of reference strings, got {type(references).__name__}.",
                    'write the references as a JSON list of strings, e.g. "output": ["yes"].')
    if not references:
        raise _fail(path, f"{where}.output", "the list of references is empty.",
                    "give at least one reference output for every instance.")
    _as_str(item["input"], path, f"{where}.input")
    for reference in references:
        _as_str(reference, path, f"{where}.output")
    if "options" in item and not _options_ok(item["options"]):
        raise _fail(path, f"{where}.options", "expected a non-empty list of non-empty option strings.",
                    'write the answer options as a JSON list of strings, e.g. "options": ["yes", "no"], '
                    "or drop the key.")


def _instance_id(item: dict, task_name: str, i: int) -> str:
    return str(item["id"]) if "id" in item else f"{task_name}-{i}"


def _check_unique_ids(ids: Sequence[str], positions: Sequence[int], path: Path) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for i, instance_id in zip(positions, ids):
        if instance_id in seen:
            raise _fail(path, f"Instances[{i}].id", f"instance id '{instance_id}' appears twice.",
                        "give every instance of a task its own id.")
        seen.add(instance_id)


def _check_instance_list(raw: Any, path: Path) -> list:
    if not isinstance(raw, list):
        raise _fail(path, "Instances", "expected a list of {id, input, output} objects.",
                    "write the instances as a JSON list.")
    return raw


def check_instances(raw: Any, path: Path, task_name: str) -> int:
    """Check every instance of a task file without building objects for them (what the index
    does for a whole release); returns how many there are."""
    raw = _check_instance_list(raw, path)
    for i, item in enumerate(raw):
        _check_instance(item, i, path)
    _check_unique_ids([_instance_id(item, task_name, i) for i, item in enumerate(raw)], range(len(raw)), path)
    return len(raw)


def _parse_instances(raw: Any, path: Path, task_name: str, only: Sequence[int] | None = None) -> tuple[Instance, ...]:
    """Instances of a task file (with `only`: just those positions, in that order). Older releases
    have instances without an id: they get `<task name>-<index>` (index from 0, in file order)."""
    raw = _check_instance_list(raw, path)
    positions = range(len(raw)) if only is None else only
    instances = []
    for i in positions:
        references = _check_instance(raw[i], i, path)
        instances.append(Instance(id=_instance_id(raw[i], task_name, i), input=raw[i]["input"],
                                  references=tuple(references), options=instance_options(raw[i])))
    _check_unique_ids([instance.id for instance in instances], positions, path)
    return tuple(instances)


def parse_task(name: str, raw: Any, path: Path, only: Sequence[int] | None = None) -> Task:
    """Build a Task from the decoded JSON of one task file; errors name the file and field.
    `only`: build just these instances (by position), as a cell does with the ones it samples."""
    if not isinstance(raw, dict):
        raise _fail(path, "(top level)", "a task file must hold a JSON object.",
                    "see the Super-NaturalInstructions task schema.")
    for key in ("Definition", "Instances", "Categories"):
        if key not in raw:
            raise _fail(path, key, "this required field is missing.",
                        f"add '{key}' to the task file.")
    definition = raw["Definition"]
    if isinstance(definition, list):
        if not definition:
            raise _fail(path, "Definition", "the definition list is empty.",
                        "write the definition as a list holding one string.")
        definition = definition[0]
    categories = raw["Categories"]
    if not isinstance(categories, list) or not categories or not all(isinstance(c, str) and c.strip() for c in categories):
        raise _fail(path, "Categories", "expected a non-empty list of category names.",
                    'write e.g. "Categories": ["Textual Entailment"].')
    return Task(
        name=name,
        definition=_as_str(definition, path, "Definition"),
        positive_examples=_parse_examples(raw.get("Positive Examples", []), path, "Positive Examples"),
        negative_examples=_parse_examples(raw.get("Negative Examples", []), path, "Negative Examples"),
        instances=_parse_instances(raw["Instances"], path, name, only),
        categories=tuple(categories),
        metadata={k: v for k, v in raw.items() if k not in KNOWN_KEYS},
    )


def load_task(path: str | Path, only: Sequence[int] | None = None) -> Task:
    """Load one task JSON file; the task's name is the file name without `.json`. `only`: build
    just the instances at these positions (the index has checked the whole file)."""
    from ablate.files import read_json

    path = Path(path)
    raw = read_json(path, "the task file", "repair the task file (UTF-8 JSON in the SuperNI task format).")
    return parse_task(path.stem, raw, path, only)


def _read_names(path: Path) -> tuple[str, ...]:
    from ablate.files import read_text

    lines = read_text(path, "the split file", "create it with one task name per line (no .json).").splitlines()
    names = tuple(line.strip() for line in lines if line.strip())
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AblateError(f"task '{repeated[0]}' is listed more than once.", file=str(path), field=repeated[0],
                          fix="list each task once.")
    return names


def check_task_dir(task_dir: str | Path) -> Path:
    task_dir = Path(task_dir)
    if not (task_dir / "tasks").is_dir():
        raise AblateError("no 'tasks/' folder in the task directory.", file=str(task_dir),
                          fix="point at a Super-NaturalInstructions clone (with tasks/ and splits/) "
                              "or run `ablate synth --out DIR` to make one.")
    return task_dir


def list_splits(task_dir: str | Path) -> list[str]:
    splits = Path(task_dir) / "splits"
    return sorted(p.name for p in splits.iterdir() if p.is_dir()) if splits.is_dir() else []


def load_split(task_dir: str | Path, split: str) -> TaskSplit:
    """Read `splits/<split>/train_tasks.txt` and `test_tasks.txt`; every name must have a task file."""
    task_dir = check_task_dir(task_dir)
    split_dir = task_dir / "splits" / split
    if not split_dir.is_dir():
        from ablate.errors import did_you_mean

        splits = list_splits(task_dir)
        if not splits:
            raise AblateError(f"split '{split}' does not exist: the task directory has no splits (no "
                              "splits/<name>/ folder).", file=str(split_dir),
                              fix=f"add {split_dir}/train_tasks.txt and test_tasks.txt (one task name per line, as "
                                  "in a Super-NaturalInstructions clone).")
        raise AblateError(f"split '{split}' does not exist.", file=str(split_dir),
                          fix=f"use one of the splits there. {did_you_mean(split, splits)}")
    result = {}
    for kind in ("train_tasks", "test_tasks"):
        path = split_dir / f"{kind}.txt"
        names = _read_names(path)
        for name in names:
            task_file = task_dir / "tasks" / f"{name}.json"
            if not task_file.is_file() and os.path.lexists(task_file):  # a FIFO, a device, a broken link...
                from ablate.files import check_regular_file

                check_regular_file(task_file, "the task file", "replace it with the task's JSON file, or remove "
                                                               f"'{name}' from {path.name}.")
            if not task_file.is_file():
                raise AblateError(f"names task '{name}', but tasks/{name}.json does not exist.",
                                  file=str(path), field=name,
                                  fix="remove the line or add the task file.")
        result[kind] = names
    both = sorted(set(result["train_tasks"]) & set(result["test_tasks"]))
    if both:
        raise AblateError(f"task '{both[0]}' is in both the train and the test split"
                          + (f" (and {len(both) - 1} more)" if len(both) > 1 else "") + ".",
                          file=str(split_dir), field=both[0], fix="a test task must stay unseen: list it once.")
    return TaskSplit(name=split, **result)


def fingerprint_task_dir(task_dir: str | Path) -> str:
    """A content fingerprint of a task directory: task file names and sizes, split file contents.

    Cheap enough for the 1,600-task SuperNI clone; independent of where the directory lives.
    """
    from ablate.files import read_text

    root = check_task_dir(task_dir)
    digest = hashlib.sha256()
    for path in sorted((root / "tasks").glob("*.json")):
        try:
            size = path.stat().st_size
        except OSError:  # a dangling symlink or a loop: read_text says which, with the fix
            read_text(path, "the task file", "replace the broken link with the task file, or remove it.")
            raise
        digest.update(f"{path.name}:{size}\n".encode())
    for path in sorted((root / "splits").glob("*/*.txt")):
        digest.update(f"{path.parent.name}/{path.name}\n".encode())
        digest.update(read_text(path, "the split file", "make it a text file, one task name per line.").encode())
    return digest.hexdigest()[:16]
