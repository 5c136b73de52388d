"""The contract of a training stage: its typed settings and one function that trains the cell's
model in place and logs what it learned.

A new stage (preference tuning after fine-tuning, say) is one module (its settings class with a
`kind`, and its `run` function) and one entry in `ablate/stages/__init__.py`. Stages run in the
order the cell lists them, each on the model the one before left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ablate.train import TrainResult


@dataclass(frozen=True)
class StageInput:
    """What every stage is given."""

    model: Any
    tokenizer: Any
    tokenizer_id: str  # for the tokenized-data cache
    truncation: Any  # the official source-truncation rule for this tokenizer (ablate.data.encoding)
    settings: Any  # the cell's CellSettings
    data: Any  # the cell's CellData (library, selection, test set)
    tracker: Any  # the cell's CellTracker
    cache_dir: Any
    device: str
    resume_state: dict | None  # this stage's state from a checkpoint, or None
    save_checkpoint: Callable[[int, Callable[[], dict]], None] | None
    carried: dict = field(default_factory=dict)  # what a stage leaves for the later ones (a reward model)
    # step -> called there with (loss history, what the stage logged): folded cells evaluate (ablate.fold)
    pauses: dict[int, Callable[[list, dict], None]] = field(default_factory=dict)


@dataclass
class StageOutput:
    train: TrainResult
    data_seconds: float = 0.0  # time spent building its data (part of the cell's data_seconds)


@dataclass(frozen=True)
class Stage:
    kind: str
    config: type  # the pydantic settings class (a `kind` literal field and its own settings)
    run: Callable[[StageInput, Any], StageOutput]
    # (cell, config) -> errors, checked by `ablate validate` / before a sweep (what the stage needs installed or given)
    check: Callable[[Any, Any], list[str]] | None = None
