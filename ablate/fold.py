"""Folded steps: one training evaluated at several numbers of steps.

A sweep over `train.steps: {values: [...], fold: true}` plans the same cells as the plain list
(each with the id of its own training), but the cells that differ only in their steps run as one
trial: it trains the longest of them and, as training passes each shorter one's steps, evaluates
the model there and logs that cell's run. Under a constant schedule (ablate.spec.FOLDABLE_SCHEDULES)
the first s steps of the longer training are an s-step training exactly (the batches are a
function of seed and step, ablate.train), so every folded cell scores what it would alone; cached,
it serves a later sweep that trains it alone, and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.plan import Cell, cell_id
from ablate.spec import FOLDABLE_SCHEDULES


@dataclass(frozen=True)
class FoldGroup:
    """The cells one training serves: `lead` is trained (the most steps), `points` are evaluated
    on the way, in order of their steps."""

    lead: Cell
    points: tuple[Cell, ...] = ()

    @property
    def cells(self) -> tuple[Cell, ...]:
        return (*self.points, self.lead)

    def trial_entry(self) -> dict:
        """The lead cell as a trial's config holds it, with the cells it scores on the way (`FOLDED`)."""
        return {**self.lead.to_json(), FOLDED: [p.to_json() for p in self.points]} if self.points else self.lead.to_json()


FOLDED = "folded"  # in a trial's cell entry: the cells (as JSON) its training scores on the way


def foldable(cell: Cell) -> bool:
    """Whether a cell's training can stop at any step on the way to it and give a shorter cell's."""
    from ablate.model import is_baseline

    settings = cell.settings
    return (settings.train.steps is not None and settings.train.steps > 0 and not settings.untuned
            and not is_baseline(settings.model)  # a heuristic baseline trains nothing to pause
            and settings.train.schedule in FOLDABLE_SCHEDULES and [s.kind for s in settings.stages] == ["sft"])


def _training_but_steps(cell: Cell) -> str:
    """The id the cell would have at any number of steps: cells that share it share a training."""
    settings = cell.settings
    return cell_id(settings.model_copy(update={"train": settings.train.model_copy(update={"steps": 1})}))


def fold_groups(cells: list[Cell]) -> list[FoldGroup]:
    """`cells` grouped by the training they share, each group led by its cell of the most steps;
    a cell that cannot fold (an untuned one, a decaying schedule, a later stage) is a group alone.
    Groups come in the order of their first cell; a cell listed twice (an untuned cell is the
    same at every learning rate) is in one group once."""
    groups: dict[str, list[Cell]] = {}
    for cell in {c.id: c for c in cells}.values():
        key = _training_but_steps(cell) if foldable(cell) else f"alone:{cell.id}"
        groups.setdefault(key, []).append(cell)
    folded = []
    for members in groups.values():
        ordered = sorted(members, key=lambda c: c.settings.train.steps or 0)
        folded.append(FoldGroup(ordered[-1], tuple(ordered[:-1])))
    return folded
