"""Answer options of a task, for rank classification (ablate.rank) and FLAN's options-in-prompt.

The options of a test instance are
- its own `options` list, when the task file gives one (`"options": ["yes", "no"]` on the instance);
- otherwise the task's label set: when the references of all the task's instances take at most
  `max_options` distinct values (after stripping whitespace), that set, sorted;
- otherwise none: the task is scored by generation only.

The task index records each task's label set (up to INDEX_OPTIONS_LIMIT values) and whether every
instance lists its own options, so a cell knows a task's options without reading its file whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ablate.data.tasks import Instance, Task

DEFAULT_MAX_OPTIONS = 10  # FLAN's classification tasks have 2-10 options
INDEX_OPTIONS_LIMIT = 100  # the largest label set the index records (and so the largest max_options)


def label_set(references: Iterable[str], max_options: int = DEFAULT_MAX_OPTIONS) -> list[str] | None:
    """The sorted distinct references (stripped) when there are 2 to `max_options` of them, else None
    (one value leaves nothing to rank). Stops reading once there are too many: a generative task's
    references are nearly all distinct."""
    seen: set[str] = set()
    for reference in references:
        seen.add(reference.strip())
        if len(seen) > max_options:
            return None
    seen.discard("")
    return sorted(seen) if len(seen) >= 2 else None


def task_options(task: Task, max_options: int = DEFAULT_MAX_OPTIONS) -> list[str] | None:
    """The options of a task as a whole: its label set over all its instances (see `label_set`).
    An instance's own options take precedence (`instance_options`)."""
    return label_set((r for instance in task.instances for r in instance.references), max_options)


def instance_options(instance: Instance, options_of_task: Sequence[str] | None) -> list[str] | None:
    """The options of one instance: its own list when the task file gives one, else the task's."""
    if instance.options is not None:
        return list(instance.options)
    return None if options_of_task is None else list(options_of_task)


def indexed_options(entry, max_options: int = DEFAULT_MAX_OPTIONS) -> list[str] | None:
    """A task's label set from its index entry (ablate.data.index.IndexEntry), under `max_options`."""
    if entry.options is None or len(entry.options) > max_options:
        return None
    return list(entry.options)


def has_options(entry, max_options: int = DEFAULT_MAX_OPTIONS) -> bool:
    """Whether rank classification can score a task: every instance lists its options, or the
    task has a label set. A task without options is scored by generation only."""
    return entry.options_given or indexed_options(entry, max_options) is not None


def options_in_prompt(text: str, options: Sequence[str]) -> str:
    """FLAN's options suffix: the text, a blank line, `OPTIONS:`, then one `- option` line each
    (flan/templates.py puts it after the question; flan/preprocessors.py `format_options`)."""
    return text + "\n\nOPTIONS:\n" + "\n".join(f"- {option}" for option in options)


def instance_with_options(instance: Instance, options: Sequence[str] | None) -> Instance:
    """The instance with FLAN's options suffix on its input, so the Tk-Instruct prompt lists them
    after the input and before `Output:` (where FLAN's templates put them); unchanged without options."""
    if not options:
        return instance
    return instance.model_copy(update={"input": options_in_prompt(instance.input.strip(), options)})
