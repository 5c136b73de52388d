"""The cost estimate of a sweep, and the confirmation a sweep over the spec's thresholds needs."""

from __future__ import annotations

import sys
from typing import TextIO

from ablate.errors import AblateError
from ablate.cost import seconds_per_step
from ablate.model import is_baseline
from ablate.plan import Cell
from ablate.prepare import PreparedSweep
from ablate.spec import folded_axis
from ablate.train import total_steps


def estimate_seconds(cell: Cell, trained: bool = True) -> float:
    """A rough CPU estimate from the model's step time on a 2-core machine (ablate/cost.py);
    `trained=False`: its evaluation only (a cell scored on the way through another's training)."""
    settings = cell.settings
    if is_baseline(settings.model):
        return 2.0
    per_step = seconds_per_step(settings.model) * settings.train.batch_size / 16
    examples = settings.data.instances_per_task * (settings.data.num_train_tasks or 40)
    evaluations = len(settings.test_encodings) * 20 * min(settings.eval.instances_per_task, 100)
    seconds = evaluations * per_step / 16 + _evaluator_seconds(settings, per_step / settings.train.batch_size)
    if not trained:
        return seconds
    seconds += 8 + per_step * total_steps(settings.train, examples)
    for stage in settings.stages if not settings.untuned else ():
        if stage.kind == "dpo":  # a pair is two sequences, with the reference's forward pass: ~3 SFT steps
            seconds += 10 + 3 * per_step * stage.batch_size / settings.train.batch_size * stage.steps
    return seconds


def _evaluator_seconds(settings, seconds_per_example: float) -> float:
    """What evaluators that estimate their own cost add (lm_eval: its tasks' requests)."""
    from ablate.evaluators import evaluator_of

    return sum(evaluator_of(c.kind).estimate_seconds(settings, c, seconds_per_example)
               for c in settings.eval.evaluators if evaluator_of(c.kind).estimate_seconds is not None)


def sweep_estimate(cells: list[Cell], concurrency: int, folded: bool = False) -> tuple[float, float]:
    """(cell-seconds, wall seconds) of running `cells`, `concurrency` at a time, on this machine's
    CPU; `folded`: the spec folds train.steps, so a group of cells trains once (ablate.fold)."""
    from ablate.fold import FoldGroup, fold_groups

    groups = fold_groups(cells) if folded else [FoldGroup(c) for c in cells]
    cell_seconds = sum(estimate_seconds(g.lead) + sum(estimate_seconds(p, trained=False) for p in g.points)
                       for g in groups)
    return cell_seconds, cell_seconds / max(1, min(concurrency, len(groups) or 1))



def within_budget(prepared: PreparedSweep, to_run: list[Cell]) -> list[Cell]:
    """The cells an estimate counts. A grid runs all of `to_run`; a refined sweep runs a subset of
    its candidate grid chosen as it goes, at most refine.budget.cells of them and cell-hours' worth,
    so the estimate is an upper bound: the costliest cells that fit the budget."""
    refine = prepared.spec.refine
    if refine is None:
        return to_run
    budget, chosen, seconds = refine.budget, [], 0.0
    for cell in longest_first(to_run)[:budget.cells or len(to_run)]:
        cost = estimate_seconds(cell)
        if budget.cell_hours is not None and (seconds + cost) / 3600 > budget.cell_hours:
            continue
        chosen.append(cell)
        seconds += cost
    return chosen


def cost_line(prepared: PreparedSweep, to_run: list[Cell], cell_seconds: float, wall_seconds: float,
              where: str) -> str:
    """The estimate as one sentence; a refined sweep's names its budget and the candidates."""
    refine = prepared.spec.refine
    counted = within_budget(prepared, to_run)
    if refine is None or len(counted) == len(to_run):
        return (f"Estimated cost of the {len(to_run)} cell(s) to run: ~{cell_seconds / 60:.1f} cell-minutes, "
                f"~{wall_seconds / 60:.1f} minutes of wall time at {prepared.spec.resources.max_concurrent} at "
                f"once ({where}).")
    limits = " and ".join(f"{name} {value:g}" for name, value in
                          (("refine.budget.cells", refine.budget.cells), ("cell_hours", refine.budget.cell_hours))
                          if value is not None)
    return (f"Estimated cost of the refinement: at most {len(counted)} of the {len(to_run)} candidate cell(s) not "
            f"done ({limits}): at most ~{cell_seconds / 60:.1f} cell-minutes, ~{wall_seconds / 60:.1f} minutes of "
            f"wall time at {prepared.spec.resources.max_concurrent} at once ({where}); it stops sooner when its "
            f"goal is met.")


def longest_first(cells: list[Cell]) -> list[Cell]:
    """Cells in the order Tune starts them: the longest (by estimate) first, so that the sweep does
    not end with one long cell running alone while the other slots idle."""
    return sorted(cells, key=estimate_seconds, reverse=True)



def over_thresholds(prepared: PreparedSweep, to_run: list[Cell]) -> bool:
    """Whether running these cells needs a confirmation (resources.confirm_over_cells / _hours)."""
    resources = prepared.spec.resources
    counted = within_budget(prepared, to_run)
    hours = sweep_estimate(counted, resources.max_concurrent, folded_axis(prepared.spec) is not None)[1] / 3600
    return len(counted) > resources.confirm_over_cells or hours > resources.confirm_over_hours


def confirm_cost(prepared: PreparedSweep, to_run: list[Cell], yes: bool, out: TextIO) -> None:
    """Print the estimate; a sweep over the spec's thresholds goes ahead only with --yes (or a 'y'
    typed at a terminal), so a typo such as steps: 1e9 or a 100,000-cell grid costs nothing."""
    resources = prepared.spec.resources
    counted = within_budget(prepared, to_run)
    cell_seconds, wall_seconds = sweep_estimate(counted, resources.max_concurrent, folded_axis(prepared.spec) is not None)
    hours = wall_seconds / 3600
    print(cost_line(prepared, to_run, cell_seconds, wall_seconds, "on this machine's CPU"), file=out, flush=True)
    if yes or not over_thresholds(prepared, to_run):
        return
    question = (f"{len(counted)} cells and ~{hours:.1f} hours exceed resources.confirm_over_cells "
                f"({resources.confirm_over_cells}) or confirm_over_hours ({resources.confirm_over_hours:g})")
    if sys.stdin.isatty():
        answer = input(f"{question}. Go ahead? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
        raise AblateError("not started.", file=prepared.spec_file, fix="add --yes, or make the sweep smaller.")
    raise AblateError(f"{question}, and there is no terminal to ask.", file=prepared.spec_file,
                      field="resources.confirm_over_cells",
                      fix="add --yes to go ahead, make the sweep smaller, or raise the thresholds.")

