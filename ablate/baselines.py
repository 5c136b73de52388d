"""Heuristic baselines from the Super-NaturalInstructions paper: no training, one rule each."""

from __future__ import annotations

from ablate.data.tasks import Instance, Task


def copy_demo(task: Task, instance: Instance) -> str:
    """The output of the task's first positive example (empty if it has none)."""
    return task.positive_examples[0].output if task.positive_examples else ""


def copy_input(task: Task, instance: Instance) -> str:
    """The instance's own input."""
    return instance.input


BASELINES = {"copy_demo": copy_demo, "copy_input": copy_input}
