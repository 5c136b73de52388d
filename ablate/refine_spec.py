"""The `refine:` block of a sweep spec: an adaptive design instead of the whole grid.

    refine:
      axis: instances_per_task            # the axis whose points the refinement places
      candidates: {low: 1, high: 512, every: power_of_2}   # or a list; or omitted: axes[axis]
      initial: {points: 4, seeds: 2}      # the first round: 4 log-spaced candidates x 2 seeds
      goal: {kind: knee, ratio: 4}        # or {kind: points, half_width: 2}, {kind: best, margin: 1}
      budget: {cells: 24, cell_hours: null, round_size: null}   # round_size null: max_concurrent

The sweep's `seeds` are the seeds the refinement may use; the candidate grid (every candidate
point x every seed, the other axes crossed as usual) is what `ablate plan` lists, and the
refinement runs a subset of it (`ablate.refine.RefineProposer`). The block decides which cells
run, never a cell's result, so it is outside every cell's id.

Overrides work as for any field: `--set refine.budget.cells=16`, `--set refine.goal.ratio=3`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from ablate.typed import Frozen

COUNT_AXES = ("train_clusters", "num_train_tasks", "instances_per_task")  # axes a knee goal can refine
LOG_AXES = ("num_train_tasks", "instances_per_task")  # placed and fitted on log x (as the report draws them)


class CandidateRange(Frozen):
    """Count-axis candidates from `low` to `high`: every integer, or the powers of 2 between."""

    low: int = Field(ge=0, le=100_000_000, description="the smallest candidate count")
    high: int = Field(ge=1, le=100_000_000, description="the largest candidate count")
    every: Literal["integer", "power_of_2"] = Field("integer", description="which counts in [low, high] are allowed")

    @model_validator(mode="after")
    def _ordered(self) -> "CandidateRange":
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be above low ({self.low})")
        if self.every == "power_of_2" and self.high < max(self.low, 1) * 2:
            raise ValueError(f"no two powers of 2 lie in [{self.low}, {self.high}]; widen the range")
        if self.every == "integer" and self.high - self.low > 100_000:
            raise ValueError("more than 100,000 integer candidates; use every: power_of_2 or a list")
        return self

    def values(self) -> list[int]:
        if self.every == "integer":
            return list(range(self.low, self.high + 1))
        values, power = [], 1
        while power <= self.high:
            if power >= self.low:
                values.append(power)
            power *= 2
        return values


class InitialDesign(Frozen):
    points: int = Field(4, ge=1, le=1000, description="candidate points of the first round, spread evenly on the "
                                                       "axis's scale (log for counts drawn on a log axis); "
                                                       "every value for a categorical axis")
    seeds: int = Field(2, ge=1, le=100, description="seeds per point in the first round (the first of `seeds`)")


class KneeGoal(Frozen):
    """The knee located to a ratio (upper / lower end of its 95% interval <= ratio), or no knee
    established (at most `no_knee_support` of the bootstrap resamples choose one)."""

    kind: Literal["knee"] = "knee"
    ratio: float = Field(4.0, gt=1, le=1e6, description="upper / lower end of the knee's 95% interval")
    no_knee_support: float = Field(0.05, ge=0, lt=1, description="'no knee' when at most this share of resamples "
                                                                  "choose a knee inside the candidates' range")


class PointsGoal(Frozen):
    """Every measured point's 95% CI half-width at most `half_width` metric points."""

    kind: Literal["points"] = "points"
    half_width: float = Field(gt=0, le=100, description="metric points (e.g. ROUGE-L)")


class BestGoal(Frozen):
    """A categorical axis: the best setting beats every other (Welch t tests, Bonferroni-corrected
    at `alpha`), or every remaining setting is within `margin` of it (equivalent)."""

    kind: Literal["best"] = "best"
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise significance level")
    margin: float = Field(1.0, ge=0, le=100, description="metric points within which settings count as equivalent")


GOALS = (KneeGoal, PointsGoal, BestGoal)  # the refinement goals, by their `kind`
RefineGoal = Annotated[Union[GOALS], Field(discriminator="kind")]


class RefineBudget(Frozen):
    cells: int | None = Field(None, ge=1, le=1_000_000, description="at most this many cells in all")
    cell_hours: float | None = Field(None, gt=0, le=1e7, description="at most this many cell-hours (by the cost estimate)")
    round_size: int | None = Field(None, ge=1, le=10_000, description="cells per round; null: resources.max_concurrent")

    @model_validator(mode="after")
    def _some_limit(self) -> "RefineBudget":
        if self.cells is None and self.cell_hours is None:
            raise ValueError("give cells or cell_hours (or both): a refinement needs a budget")
        return self


class RefineSpec(Frozen):
    axis: str = Field(description="the axis the refinement places points on (a key of `axes`, or given here by "
                                  "`candidates`)")
    candidates: list[Any] | CandidateRange | None = Field(
        None, description="the axis's allowed values: a list, or {low, high, every}; null: the values in axes")
    initial: InitialDesign = Field(InitialDesign(), description="the first round: points spread over the candidates")
    goal: RefineGoal = Field(default_factory=KneeGoal, description="when to stop: knee, points or best")
    budget: RefineBudget = Field(description="the most the refinement may spend (it stops sooner once the goal is met)")

    def candidate_values(self, axes: dict[str, Any]) -> list[Any]:
        if isinstance(self.candidates, CandidateRange):
            return self.candidates.values()
        if self.candidates is not None:
            return list(self.candidates)
        values = axes.get(self.axis) or []
        if isinstance(values, dict) and isinstance(values.get("cumulative"), list):  # train_clusters: {cumulative: [...]}
            order = values["cumulative"]
            return [order[:i] for i in range(0 if values.get("from_none") else 1, len(order) + 1)]
        return list(values) if isinstance(values, list) else []


def check_refine(refine: RefineSpec, axes: dict[str, Any], seeds: list[int]) -> None:
    """Contradictions between the block and the rest of the spec; raises ValueError with the fix."""
    values = refine.candidate_values(axes)
    if len(values) < 2:
        raise ValueError(f"refine.axis '{refine.axis}' has {len(values)} candidate value(s); give at least 2 in "
                         f"refine.candidates or axes.{refine.axis}")
    counts = isinstance(refine.goal, KneeGoal)
    if counts and refine.axis not in COUNT_AXES:
        raise ValueError(f"goal 'knee' needs a count axis ({', '.join(COUNT_AXES)}), not '{refine.axis}'; "
                         "use goal {kind: best} for a categorical axis")
    if counts and refine.axis != "train_clusters" and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                              for v in values):
        raise ValueError(f"the candidates of '{refine.axis}' must be counts (whole numbers >= 0)")
    if refine.axis in LOG_AXES and counts and any(v == 0 for v in values):
        raise ValueError(f"'{refine.axis}' is fitted on a log axis: a candidate 0 (the untuned model) cannot be "
                         "placed on it; start the candidates at 1")
    if refine.initial.seeds > len(seeds):
        raise ValueError(f"refine.initial.seeds is {refine.initial.seeds} but the sweep lists {len(seeds)} seed(s); "
                         "list more seeds (the refinement picks from them) or lower initial.seeds")
    others = [k for k, v in axes.items() if k not in (refine.axis, "test_encoding")
              and (isinstance(v, dict) or (isinstance(v, list) and len(v) > 1))]
    if others:
        raise ValueError(f"a refinement places points on one axis, but axes {', '.join(others)} also vary; "
                         "fix them to one value (or run one refined sweep per value)")
    if refine.axis == "test_encoding":
        raise ValueError("test encodings are evaluated inside every cell; refine a training axis instead")


def fill_candidates(raw: Any) -> Any:
    """The raw spec with `refine.candidates` written into `axes` (so the spec's grid is the
    candidate grid). A refine block that does not validate is left to its own field's errors."""
    from pydantic import ValidationError

    if not isinstance(raw, dict) or not isinstance(raw.get("refine"), dict):
        return raw
    try:
        refine = RefineSpec.model_validate(raw["refine"])
    except ValidationError:
        return raw
    axes = raw.get("axes") if isinstance(raw.get("axes"), dict) else {}
    if refine.candidates is None:
        return raw
    if refine.axis in axes:
        raise ValueError(f"refine.candidates and axes.{refine.axis} both give the axis's values; keep one "
                         "(the candidates are the axis's values)")
    return {**raw, "axes": {**axes, refine.axis: refine.candidate_values(axes)}}
