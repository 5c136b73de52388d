"""Proposers: what a sweep runs next. A sweep runs in rounds; before each round its proposer,
given the results of the cells finished so far, proposes a batch of cells (each with the reason
it was chosen) or stops. The runner (`ablate.sweep`) runs each batch through Ray Tune and
records the round in the plan; the sweep's cells are the union of its rounds.

The grid is the one-round proposer: every cell of the spec's grid, at once. An adaptive proposer
(placing cells where a curve's shape or a decision is least certain) is another class with the
same method. A proposal must be a function of the finished cells only, so that a sweep killed
mid-round and run again proposes the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from ablate.plan import Cell

# Per finished cell id, its metrics (MLflow's, as the cell logged them).
FinishedCells = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Proposal:
    cells: list[Cell]
    reasons: dict[str, str] = field(default_factory=dict)  # cell id -> why this cell, this round


class Proposer(Protocol):
    name: str

    def propose(self, round_index: int, finished: FinishedCells) -> Proposal | None:
        """The cells of round `round_index` (0 first), or None: the sweep is complete."""


@dataclass
class GridProposer:
    """Every cell of the grid in the first round; nothing after."""

    cells: Sequence[Cell]
    name: str = "grid"

    def propose(self, round_index: int, finished: FinishedCells) -> Proposal | None:
        if round_index > 0:
            return None
        return Proposal(list(self.cells), {c.id: "grid" for c in self.cells})
