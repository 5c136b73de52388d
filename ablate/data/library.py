"""The tasks of one directory, read through its index: what selection, validation, the cells and
the baselines use to reach task files (ablate/data/tasks.py parses them; ablate/data/index.py
summarises them)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ablate.data.columnar import store_dir, stored_task
from ablate.data.index import build_index, load_index, read_index
from ablate.data.tasks import Task, TaskSplit, check_task_dir, fingerprint_task_dir, load_split, load_task


class TaskLibrary:
    """The tasks of one directory, read through its index (ablate/data/index.py): names, categories
    and instance counts come from the index; a task file is read only when its instances are
    needed, and only the few most recent tasks are kept, so memory stays that of the tasks in use.
    `index_dir`: where the index is saved and found again; `persist_index`: whether to save it
    (sweeps and cells do; `validate` and `plan` only read an existing one). A persisted index
    converts the task files into the columnar store beside it (ablate/data/columnar.py), which
    `subset` reads instead of the JSON wherever the task is there."""

    RECENT = 8

    def __init__(self, task_dir: str | Path, index_dir: Path | None = None, persist_index: bool = False) -> None:
        self.root = check_task_dir(task_dir)
        self._index_dir, self._persist = index_dir, persist_index
        self._store = store_dir(index_dir) if index_dir is not None else None
        self._index = None
        self._entries: dict = {}  # entries of single tasks, when no whole index is saved or wanted
        self._looked_for_index = False
        self._fingerprint_value: str | None = None
        self._names: list[str] | None = None
        self._recent: dict[str, Task] = {}

    def names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(p.stem for p in (self.root / "tasks").glob("*.json"))
        return self._names

    @property
    def index(self):
        """The whole index: the saved one, or built now (and saved when persisting)."""
        if self._index is None:
            self._index = load_index(self.root, self.names(), self._fingerprint(), self._index_dir, self._persist)
        return self._index

    def _fingerprint(self) -> str:
        if self._fingerprint_value is None:
            self._fingerprint_value = fingerprint_task_dir(self.root)
        return self._fingerprint_value

    def _entry(self, name: str):
        """One task's index entry: from the whole index when one is saved (or being saved), else
        from that task's file alone (`ablate eval` on a release reads only its test tasks)."""
        if self._index is None and not self._persist and not self._looked_for_index:
            self._looked_for_index = True  # once: a saved index does not appear while we read
            self._index = read_index(self._index_dir, self._fingerprint(), self.names())
        if self._index is None and not self._persist:
            if name not in self._entries:
                self._entries.update(build_index(self.root, [name]))
            return self._entries[name]
        return self.index[name]

    def category(self, name: str) -> str:
        return self._entry(name).category

    def instance_count(self, name: str) -> int:
        entry = self._entry(name)
        entry.check()
        return entry.instances

    def options(self, name: str, max_options: int) -> list[str] | None:
        """The task's label set, from the index (ablate.data.options.indexed_options)."""
        from ablate.data.options import indexed_options

        entry = self._entry(name)
        entry.check()
        return indexed_options(entry, max_options)

    def has_options(self, name: str, max_options: int) -> bool:
        """Whether rank classification can score the task (ablate.data.options.has_options)."""
        from ablate.data.options import has_options

        entry = self._entry(name)
        entry.check()
        return has_options(entry, max_options)

    def example_counts(self, name: str) -> tuple[int, int]:
        """How many positive and negative examples (demonstrations) the task has."""
        entry = self._entry(name)
        entry.check()
        return entry.positives, entry.negatives

    def subset(self, name: str, positions: Sequence[int]) -> Task:
        """The task with only the instances at `positions`, in that order (a cell's sample): the
        rest of the file is never turned into objects. Read from the columnar store when the task
        is there (by row, memory-mapped: no JSON parsed), else from its file."""
        path = self.root / "tasks" / f"{name}.json"
        if self._store is not None:
            entry = self._entry(name)
            # The fingerprint holds names and sizes: a file edited to the same size after its rows
            # were stored is newer than its stored copy, and is read from the file itself.
            task = stored_task(self._store, entry.sha256, name, positions, newer_than=path) \
                if entry.error is None else None
            if task is not None:
                return task
        return load_task(path, only=positions)

    def get(self, name: str) -> Task:
        task = self._recent.pop(name, None) or load_task(self.root / "tasks" / f"{name}.json")
        self._recent[name] = task
        while len(self._recent) > self.RECENT:
            self._recent.pop(next(iter(self._recent)))
        return task

    def split(self, split: str) -> TaskSplit:
        return load_split(self.root, split)
