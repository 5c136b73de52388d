"""The adaptive proposer: spend each next cell where the goal's uncertainty is largest, stop when
the answer is known well enough (the spec's `refine:` block, ablate/refine_spec.py).

The candidate grid (every candidate point x every seed) is built once by the plan code, so every
proposed cell is an ordinary cell with its standard id. Each round refits the curve with the
report's own statistics (`curve_summary`, `bootstrap_knees` of ablate/analyse/stats.py, on the
report's mean line) and picks, in order:
- new points filling the widest gaps (and both ends) until a saturating fit is possible;
- a new point inside the knee's 95% interval, in the gap between measured points where the
  bootstrap knees are densest;
- another seed at the point whose CI is widest, weighted by the share of bootstrap knees beside it.
A points goal adds the unmeasured candidates, then seeds where the CI is widest; a best-setting
goal adds seeds to the best setting and to the one it is least clearly above.

Proposals are a function of the finished cells only: each call replays the refinement from its
initial design, round by round, over the finished cells each round proposed, and round i is the
replay's round i. A sweep killed mid-round and run again gets the same rounds: the finished ones
(all cached) and then the rest of the interrupted one; a finished refinement replays to its stop
without training anything. A proposed cell that failed is given up for the rest of the process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ablate import results
from ablate.analyse.report import MEAN_LINE, line_values
from ablate.analyse.stats import (BOOTSTRAP_ROUNDS, KNEE_FRACTION, MIN_DISTINCT_X, PointStats, _scales, bootstrap_knees,
                                  curve_summary, point_stats)
from ablate.plan import Cell, format_value
from ablate.propose import FinishedCells, Proposal
from ablate.refine_spec import LOG_AXES, BestGoal, KneeGoal, PointsGoal, RefineSpec


# The saturating fit's AICc (4 parameters, the noise included) needs more than 5 observations: with
# fewer, no resample can choose a knee, and "no knee" would be established by the count alone.
SATURATING_MIN_CELLS = 6


@dataclass(frozen=True)
class Round:
    index: int
    cells: tuple[Cell, ...]
    reasons: dict[str, str]


@dataclass(frozen=True)
class Refit:
    """The state after a round: the points, the fit and the goal's value."""

    cells: int  # cells measured so far
    points: tuple[PointStats, ...]
    summary: dict
    goal_value: float | None
    met: str | None  # why the goal is met; None: not met

    def metrics(self, knee_goal: bool) -> dict[str, float]:
        found = {results.REFINE_CELLS: float(self.cells), results.REFINE_GOAL_MET: float(self.met is not None)}
        if self.goal_value is not None and math.isfinite(self.goal_value):
            found[results.REFINE_GOAL_VALUE] = self.goal_value
        if knee_goal and self.summary.get("knee") is not None:
            low, high = self.summary["knee_ci"]
            found[results.REFINE_KNEE], found[results.REFINE_KNEE_LOW] = self.summary["knee"], low
            if high is not None:
                found[results.REFINE_KNEE_HIGH] = high
        return found


def x_of(axis: str, value: Any) -> float:
    return float(len(value)) if axis == "train_clusters" else float(value)


@dataclass
class RefineProposer:
    """An adaptive design over one axis of `cells` (the candidate grid). `measure` reads a finished
    cell's score from its metrics (the report's mean line of the headline metric by default)."""

    cells: Sequence[Cell]
    refine: RefineSpec
    seeds: Sequence[int]
    round_size: int
    metric: str = "rougeL"
    aggregate: str = "clusters"
    bootstrap_rounds: int = BOOTSTRAP_ROUNDS
    cost_seconds: Callable[[Cell], float] | None = None  # for budget.cell_hours (the sweep's estimate)
    name: str = "refine"
    progress: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (round, refine/... metrics)
    stopped: str | None = None  # why the refinement stopped (goal met / budget spent / no candidate left)
    _handed: set[str] = field(default_factory=set)
    _given_up: set[str] = field(default_factory=set)
    _refits: dict = field(default_factory=dict, repr=False)  # the replay refits the same rounds on every call

    def __post_init__(self) -> None:
        axis = self.refine.axis
        self.knee_goal = isinstance(self.refine.goal, KneeGoal)
        self.log_scale = axis in LOG_AXES
        self.categorical = isinstance(self.refine.goal, BestGoal)
        usable = [c for c in self.cells if not (c.settings.untuned and not self.categorical)]
        values = list(dict.fromkeys(repr(c.axis_values[axis]) for c in usable))
        first = {repr(c.axis_values[axis]): c.axis_values[axis] for c in usable}
        self.values = [first[v] for v in values]  # the candidate settings, in axis order
        if not self.categorical:
            self.values.sort(key=lambda v: x_of(axis, v))
        self.grid = {(self._key(c.axis_values[axis]), c.settings.seed): c for c in usable}
        self.encoding = self.cells[0].settings.test_encodings[0]
        self.limit = min(self.refine.budget.cells or len(self.grid), len(self.grid))

    # -- the axis ---------------------------------------------------------------------------
    def _key(self, value: Any) -> str:
        return repr(value)

    def _x(self, value: Any) -> float:
        return float(self.values.index(value)) if self.categorical else x_of(self.refine.axis, value)

    def _u(self, value: Any) -> float:
        x = self._x(value)
        return math.log(x) if self.log_scale else x

    def _label(self, value: Any) -> str:
        return f"{len(value)} clusters" if self.refine.axis == "train_clusters" else format_value(value)

    def _cell(self, value: Any, seed: int) -> Cell | None:
        cell = self.grid.get((self._key(value), seed))
        return None if cell is None or cell.id in self._given_up else cell

    # -- the protocol -----------------------------------------------------------------------
    def propose(self, round_index: int, finished: FinishedCells) -> Proposal | None:
        """Round `round_index` of the refinement the finished cells replay to: a round already
        complete (a re-run: all its cells cached), the round to run now, or None (stopped)."""
        while True:
            history, current = self._replay(finished)
            if round_index < len(history):  # finished before (a re-run): the same round, nothing to train
                chosen = history[round_index]
                break
            if current is None:
                return None
            missing = [c for c in current.cells if c.id not in finished]
            if round_index > current.index and all(c.id in self._handed for c in missing):
                self._given_up.update(c.id for c in missing)  # proposed and run before, and failed: given up
                continue
            chosen = current
            break
        self._handed.update(c.id for c in chosen.cells)
        return Proposal(list(chosen.cells), dict(chosen.reasons))

    def _replay(self, finished: FinishedCells) -> tuple[list[Round], Round | None]:
        """The refinement's completed rounds, and the round to run now (None: stopped)."""
        history: list[Round] = []
        self.progress, self.stopped = [], None
        current = self._initial()
        observed: dict[str, float] = {}
        while True:
            if any(c.id not in finished for c in current.cells):
                return history, current
            for c in current.cells:
                score = self.measure(finished[c.id])
                if score is not None:
                    observed[c.id] = score
            history.append(current)
            proposed = {c.id for r in history for c in r.cells}
            refit = self.refit(observed)
            self.progress.append((current.index, refit.metrics(self.knee_goal)))
            spent = len(proposed)
            if refit.met is not None:
                self.stopped = f"goal met after {spent} of at most {self.limit} cells ({refit.met})"
                return history, None
            room = self._room(proposed)
            if room <= 0:
                self.stopped = (f"budget spent: {spent} of at most {self.limit} cells, goal not met "
                                f"({self._goal_text(refit)})")
                return history, None
            picks = self._choose(refit, observed, proposed, room)
            if not picks:
                self.stopped = (f"no candidate left after {spent} of at most {self.limit} cells, goal not met "
                                f"({self._goal_text(refit)})")
                return history, None
            index = current.index + 1
            current = Round(index, tuple(c for c, _ in picks), {c.id: f"round {index}: {why}" for c, why in picks})

    def measure(self, metrics: Mapping[str, float]) -> float | None:
        """A finished cell's score: the report's mean line of the metric."""
        return line_values(dict(metrics), self.encoding, self.metric, self.aggregate).get(MEAN_LINE)

    def _room(self, proposed: set[str]) -> int:
        """Cells the budget still allows in the next round."""
        room = min(self.round_size, self.limit - len(proposed))
        return room

    def _within_hours(self, proposed_ids: set[str], picks: list[Cell]) -> bool:
        hours = self.refine.budget.cell_hours
        if hours is None or self.cost_seconds is None:
            return True
        by_id = {c.id: c for c in self.grid.values()}
        spent = sum(self.cost_seconds(by_id[i]) for i in proposed_ids if i in by_id)
        return (spent + sum(self.cost_seconds(c) for c in picks)) / 3600 <= hours

    # -- round 0 ----------------------------------------------------------------------------
    def _initial(self) -> Round:
        design = self.refine.initial
        if self.categorical:
            chosen = list(self.values)
        else:
            chosen = spread(self.values, [self._u(v) for v in self.values], design.points)
        seeds = list(self.seeds)[:design.seeds]
        cells = [c for v in chosen for s in seeds if (c := self._cell(v, s)) is not None][:self.limit]
        why = (f"round 0: initial design ({len(chosen)} {'settings' if self.categorical else 'points spread evenly'}"
               f" x {len(seeds)} seeds)")
        return Round(0, tuple(cells), {c.id: why for c in cells})

    # -- refit and goal -----------------------------------------------------------------------
    def _points(self, observed: dict[str, float]) -> dict[str, list[tuple[int, float]]]:
        by_value: dict[str, list[tuple[int, float]]] = {}
        for (key, seed), cell in self.grid.items():
            if cell.id in observed:
                by_value.setdefault(key, []).append((seed, observed[cell.id]))
        return {k: sorted(v) for k, v in by_value.items()}

    def refit(self, observed: dict[str, float]) -> Refit:
        key = tuple(sorted(observed.items()))
        if key not in self._refits:
            self._refits[key] = self._refit(observed)
        return self._refits[key]

    def _knees_inside(self, points: Sequence[PointStats]) -> list[float]:
        key = ("knees", tuple((p.x, p.values) for p in points))
        if key not in self._refits:
            self._refits[key] = self._bootstrap_inside(points)
        return self._refits[key]

    def _refit(self, observed: dict[str, float]) -> Refit:
        by_value = self._points(observed)
        points = tuple(point_stats(self._x(v), [y for _, y in by_value[self._key(v)]])
                       for v in self.values if self._key(v) in by_value)
        goal = self.refine.goal
        if isinstance(goal, KneeGoal):
            summary = curve_summary(points, log_scale=self.log_scale, bootstrap_rounds=self.bootstrap_rounds)
            value, met = self._knee_goal(goal, points, summary)
        elif isinstance(goal, PointsGoal):
            summary = {}
            widths = [(p.ci_high - p.mean) if p.ci_high is not None else math.inf for p in points]
            value = max(widths) if len(points) == len(self.values) else math.inf
            met = f"every point's CI half-width {value:.2f} <= {goal.half_width:g}" if value <= goal.half_width else None
        else:
            summary = best_setting(points, goal)
            value, met = summary.get("p"), summary.get("met")
        return Refit(len(observed), points, summary, value, met)

    def _knee_goal(self, goal: KneeGoal, points: Sequence[PointStats], summary: dict) -> tuple[float | None, str | None]:
        if summary.get("outcome") == "saturating":
            low, high = summary["knee_ci"]
            ratio = high / low if high is not None and low > 0 else math.inf
            if ratio <= goal.ratio:
                return ratio, f"knee {summary['knee']:.3g} [{low:.3g}, {high:.3g}], ratio {ratio:.2f} <= {goal.ratio:g}"
            return ratio, None
        # "No knee": the whole range measured, enough points for a knee, and almost no resample finds one inside.
        xs = {p.x for p in points}
        ends = {self._x(self.values[0]), self._x(self.values[-1])}
        if len(xs) < min(MIN_DISTINCT_X, len(self.values)) or not ends <= xs or sum(p.n for p in points) < SATURATING_MIN_CELLS:
            return None, None
        support = self._inside_support(points)
        if support <= goal.no_knee_support:
            return support, (f"no knee: {summary.get('outcome') or 'no fit'}, {support:.0%} of resamples find a knee "
                             f"inside the range (<= {goal.no_knee_support:.0%})")
        return support, None

    def _bootstrap_inside(self, points: Sequence[PointStats]) -> list[float]:
        knees = bootstrap_knees(points, self.log_scale, self.bootstrap_rounds)
        lo, hi = min(p.x for p in points), max(p.x for p in points)
        if self.log_scale:
            lo, hi = math.log(lo), math.log(hi)
        return [k for k in knees if lo < k < hi]

    def _inside_support(self, points: Sequence[PointStats]) -> float:
        return len(self._knees_inside(points)) / self.bootstrap_rounds

    def _goal_text(self, refit: Refit) -> str:
        goal = self.refine.goal
        if refit.goal_value is None:
            return "no estimate yet"
        if isinstance(goal, KneeGoal):
            if refit.summary.get("outcome") == "saturating":
                return f"knee interval ratio {refit.goal_value:.2f} > {goal.ratio:g}"
            return f"{refit.goal_value:.0%} of resamples find a knee"
        if isinstance(goal, PointsGoal):
            return f"widest CI half-width {refit.goal_value:.2f} > {goal.half_width:g}"
        return f"best setting not separated (p {refit.goal_value:.3f})"

    # -- the next round -----------------------------------------------------------------------
    def _choose(self, refit: Refit, observed: dict[str, float], proposed: set[str], room: int) -> list[tuple[Cell, str]]:
        """Up to `room` cells, each with its reason, in priority order."""
        measured = self._points(observed)
        picks: list[tuple[Cell, str]] = []
        taken = set(proposed)

        def add(cell: Cell | None, why: str) -> bool:
            if cell is None or cell.id in taken or len(picks) >= room or not self._within_hours(proposed, [c for c, _ in picks] + [cell]):
                return False
            picks.append((cell, why))
            taken.add(cell.id)
            return True

        add.free = lambda cell: cell.id not in taken  # type: ignore[attr-defined]

        def new_point(value: Any, why: str) -> None:
            for seed in list(self.seeds)[:self.refine.initial.seeds]:
                add(self._cell(value, seed), why)

        if isinstance(self.refine.goal, BestGoal):
            for index, why in refit.summary.get("wanted", []):
                self._add_seed(self.values[index], measured, add, why)
            return picks
        unmeasured = [v for v in self.values if self._key(v) not in measured
                      and not any(c.id in taken for (k, _), c in self.grid.items() if k == self._key(v))]
        if isinstance(self.refine.goal, PointsGoal):
            for value in unmeasured:
                new_point(value, f"point {self._label(value)} not measured yet")
            for value, half in self._widest(measured, taken):
                self._add_seed(value, measured, add, f"the widest CI (half-width {half:.2f})")
            return picks

        xs_measured = [v for v in self.values if self._key(v) in measured]
        if len(xs_measured) < min(MIN_DISTINCT_X, len(self.values)) or self.values[0] not in xs_measured \
                or self.values[-1] not in xs_measured:
            for value, gap in self._gap_fillers(xs_measured, unmeasured):
                new_point(value, f"new point {self._label(value)} in the widest gap ({gap}): a knee needs "
                                 f"{MIN_DISTINCT_X} points over the whole range")
        knees = self._knees_inside(refit.points) if len(refit.points) >= MIN_DISTINCT_X else []
        if refit.summary.get("knee") is not None and len(picks) < room:
            self._narrowest(measured, add, room - len(picks))
        if knees:
            support = len(knees) / self.bootstrap_rounds
            for value, share, gap in self._densest_gaps(xs_measured, unmeasured, knees):
                new_point(value, f"new point {self._label(value)} in the knee interval, between {gap}, where "
                                 f"{share:.0%} of the bootstrap knees lie (support {support:.2f})")
            for value, weight, half in self._seed_targets(measured, knees, taken):
                self._add_seed(value, measured, add, f"the CI (half-width {half:.2f}) that most widens the knee "
                                                     f"interval ({weight:.0%} of the bootstrap knees beside it)")
        else:
            for value, gap in self._gap_fillers(xs_measured, unmeasured):
                new_point(value, f"new point {self._label(value)} in the widest gap ({gap}): no knee found yet")
        for value, half in self._widest(measured, taken):
            self._add_seed(value, measured, add, f"the widest CI (half-width {half:.2f})")
        return picks

    def _narrowest(self, measured: dict, add, count: int) -> None:
        """`count` cells, one at a time, each where one more cell narrows the knee's profile
        interval most (`knee_log_ratio`: an observation at the fit's prediction there), the
        earlier picks counted in at their predictions."""
        us = [self._u(v) for v in self.values for _ in measured.get(self._key(v), [])]
        ys = [y for v in self.values for _, y in measured.get(self._key(v), [])]
        for _ in range(count):
            free = []
            for value in self.values:
                have = {s for s, _ in measured.get(self._key(value), [])}
                cell = next((c for s in self.seeds if s not in have and (c := self._cell(value, s)) is not None
                             and add.free(c)), None)
                if cell is not None:
                    free.append((value, cell))
            if not free:
                return
            widths, predicted = knee_log_ratio(us, ys, [self._u(v) for v, _ in free], self.log_scale)
            best = min(range(len(free)), key=lambda j: (widths[j], j))
            value, cell = free[best]
            if not math.isfinite(widths[best]) or not add(cell, (
                    f"seed {cell.settings.seed} at {self._label(value)}: narrows the knee's interval most "
                    f"(its profile interval's ratio {math.exp(widths[best]):.2f} predicted after it)")):
                return
            us.append(self._u(value))
            ys.append(float(predicted[best]))

    def _add_seed(self, value: Any, measured: dict, add, why: str) -> None:
        have = {s for s, _ in measured.get(self._key(value), [])}
        for seed in self.seeds:
            if seed not in have and add(self._cell(value, seed), f"seed {seed} at {self._label(value)}: {why}"):
                return

    def _widest(self, measured: dict, taken: set[str]) -> list[tuple[Any, float]]:
        """Measured points with a seed left, widest CI first (one seed: infinitely wide)."""
        found = []
        for value in self.values:
            ys = [y for _, y in measured.get(self._key(value), [])]
            if ys and any((c := self._cell(value, s)) is not None and c.id not in taken for s in self.seeds):
                p = point_stats(0, ys)
                found.append((value, (p.ci_high - p.mean) if p.ci_high is not None else math.inf))
        return sorted(found, key=lambda item: -item[1])

    def _gap_fillers(self, measured: list, unmeasured: list) -> list[tuple[Any, str]]:
        """Unmeasured candidates, ends first, then the one nearest the middle of each widest gap."""
        chosen, found, points = [], [], list(measured)
        for end in (self.values[0], self.values[-1]):
            if end not in points and end in unmeasured:
                chosen.append(end)
                found.append((end, "an end of the range"))
                points.append(end)
        left = [v for v in unmeasured if v not in chosen]
        while left:
            us = sorted(self._u(v) for v in points)
            best = None
            for a, b in zip(us, us[1:]):
                inside = [v for v in left if a < self._u(v) < b]
                if inside and (best is None or b - a > best[0]):
                    best = (b - a, min(inside, key=lambda v: abs(self._u(v) - (a + b) / 2)), a, b)
            if best is None:
                break
            _, value, a, b = best
            found.append((value, f"{self._label_u(a)} to {self._label_u(b)}"))
            points.append(value)
            left.remove(value)
        return found

    def _label_u(self, u: float) -> str:
        return f"{math.exp(u):.3g}" if self.log_scale else f"{u:.3g}"

    def _densest_gaps(self, measured: list, unmeasured: list, knees: list[float]) -> list[tuple[Any, float, str]]:
        """Per gap between measured points holding a candidate: the candidate nearest the gap's
        median knee, with the share of bootstrap knees in the gap; densest first."""
        us = sorted(self._u(v) for v in measured)
        found = []
        for a, b in zip(us, us[1:]):
            inside = [v for v in unmeasured if a < self._u(v) < b]
            in_gap = sorted(k for k in knees if a <= k < b)
            if inside and in_gap:
                middle = in_gap[len(in_gap) // 2]
                value = min(inside, key=lambda v: (abs(self._u(v) - middle), self._u(v)))
                found.append((value, len(in_gap) / len(knees), f"{self._label_u(a)} and {self._label_u(b)}"))
        return sorted(found, key=lambda item: -item[1])

    def _seed_targets(self, measured: dict, knees: list[float], taken: set[str]) -> list[tuple[Any, float, float]]:
        """Measured points by CI half-width x the share of bootstrap knees in the gaps beside them."""
        values = [v for v in self.values if self._key(v) in measured]
        us = [self._u(v) for v in values]
        found = []
        for i, value in enumerate(values):
            low = us[i - 1] if i else us[i]
            high = us[i + 1] if i + 1 < len(us) else us[i]
            weight = sum(1 for k in knees if low <= k <= high) / len(knees)
            ys = [y for _, y in measured[self._key(value)]]
            p = point_stats(0, ys)
            half = (p.ci_high - p.mean) if p.ci_high is not None else math.inf
            free = any((c := self._cell(value, s)) is not None and c.id not in taken for s in self.seeds)
            if weight > 0 and free:
                found.append((value, weight, half))
        return sorted(found, key=lambda item: -(item[1] * (item[2] if math.isfinite(item[2]) else 1e6)))


def knee_log_ratio(us: Sequence[float], ys: Sequence[float], extra: Sequence[float], log_scale: bool):
    """The profile-likelihood knee interval's log(upper / lower end) (as `curve_summary` draws it
    from the RSS profile over the scale grid, ends interpolated between grid scales) after one more
    observation at each of the u values `extra`, each at the current saturating fit's prediction:
    how much one more cell there would narrow the interval. An array, one value per `extra`
    (inf: the interval stays open), and the fit's prediction at each."""
    import numpy as np
    from scipy import stats as sps

    u, y, c = np.asarray(us, float), np.asarray(ys, float), np.asarray(extra, float)
    u0 = float(u.min())
    scales = _scales(float(u.max() - u0))[:, None]  # S x 1
    e, ec = np.exp(-(u[None, :] - u0) / scales), np.exp(-(c[None, :] - u0) / scales)  # S x n, S x C
    a, ac = 1 - e, 1 - ec
    sums = [(a * a).sum(1), (a * e).sum(1), (e * e).sum(1), (a * y).sum(1), (e * y).sum(1), float((y * y).sum())]

    def rss(saa, sab, sbb, say, sby, syy):
        det = np.maximum(saa * sbb - sab ** 2, 1e-300)
        return syy - (sbb * say ** 2 - 2 * sab * say * sby + saa * sby ** 2) / det

    profile = rss(*sums)
    best = int(profile.argmin())
    det = sums[0][best] * sums[2][best] - sums[1][best] ** 2
    plateau = (sums[2][best] * sums[3][best] - sums[1][best] * sums[4][best]) / det
    start = (sums[0][best] * sums[4][best] - sums[1][best] * sums[3][best]) / det
    yc = plateau * ac[best] + start * ec[best]  # C: the fit's prediction at each extra u
    after = rss(sums[0][:, None] + ac * ac, sums[1][:, None] + ac * ec, sums[2][:, None] + ec * ec,
                sums[3][:, None] + ac * yc, sums[4][:, None] + ec * yc, sums[5] + yc * yc)  # S x C
    n = len(u) + 1
    if n - 4 <= 0:
        return np.full(len(c), np.inf), yc
    allowed = after.min(0) * (1 + sps.f.ppf(0.95, 1, n - 4) / (n - 4))
    gain = math.log(1 / (1 - KNEE_FRACTION))
    found = []
    s = scales[:, 0]
    for j in range(len(c)):
        col, limit = after[:, j], allowed[j]
        inside = np.where(col <= limit)[0]
        lo, hi = int(inside.min()), int(inside.max())
        if hi >= len(s) - 1:
            found.append(math.inf)
            continue
        s_lo = s[lo] if lo == 0 else np.interp(limit, [col[lo], col[lo - 1]], [s[lo], s[lo - 1]])
        s_hi = np.interp(limit, [col[hi], col[hi + 1]], [s[hi], s[hi + 1]])
        k_lo, k_hi = u0 + s_lo * gain, u0 + s_hi * gain
        found.append(k_hi - k_lo if log_scale else math.log(k_hi / k_lo) if k_lo > 0 else math.inf)
    return np.array(found), yc


def spread(values: Sequence[Any], us: Sequence[float], count: int) -> list[Any]:
    """`count` of `values` spread evenly on their scale `us` (both ends included), in order."""
    if count >= len(values):
        return list(values)
    if count == 1:
        return [values[0]]
    chosen: list[int] = []
    for i in range(count):
        target = us[0] + (us[-1] - us[0]) * i / (count - 1)
        order = sorted(range(len(values)), key=lambda j: (abs(us[j] - target), j))
        chosen.append(next(j for j in order if j not in chosen))
    return [values[j] for j in sorted(chosen)]


def best_setting(points: Sequence[PointStats], goal: BestGoal) -> dict:
    """Is the best setting (highest mean) known? Welch t tests of the best against each other
    setting, Bonferroni-corrected at goal.alpha; or every other within goal.margin of it (two
    one-sided tests). `wanted`: the settings to add a seed to next (the best, and the one it is
    least clearly above); `p`: the largest corrected p of the best's comparisons."""
    from scipy import stats

    ready = [p for p in points if p.n >= 2]
    if len(ready) < len(points) or len(points) < 2:
        return {"p": None, "met": None, "wanted": [(i, "a setting with fewer than 2 seeds") for i in
                                                   [int(p.x) for p in points if p.n < 2]]}
    best = max(points, key=lambda p: p.mean)
    others = [p for p in points if p is not best]
    m = len(others)
    ps, equivalent = [], True
    for other in others:
        test = stats.ttest_ind(best.values, other.values, equal_var=False, alternative="greater")
        p = float(test.pvalue) if not math.isnan(test.pvalue) else 1.0
        ps.append(min(1.0, p * m))
        # Equivalence: both one-sided tests against +-margin reject.
        shifted_up = stats.ttest_ind(best.values, [v + goal.margin for v in other.values], equal_var=False,
                                     alternative="less")
        shifted_down = stats.ttest_ind(best.values, [v - goal.margin for v in other.values], equal_var=False,
                                       alternative="greater")
        equivalent &= max(float(shifted_up.pvalue), float(shifted_down.pvalue)) * m < goal.alpha
    worst = max(range(m), key=lambda i: ps[i])
    summary = {"p": max(ps), "best": best.x, "met": None,
               "wanted": [(int(best.x), "the best setting so far"),
                          (int(others[worst].x), f"the setting the best is least clearly above (p {ps[worst]:.3f})")]}
    if max(ps) < goal.alpha:
        summary["met"] = f"the best setting beats every other (largest corrected p {max(ps):.3f} < {goal.alpha:g})"
    elif equivalent:
        summary["met"] = f"every setting is within {goal.margin:g} of the best (equivalent at {goal.alpha:g})"
    return summary


def refine_proposer(prepared) -> RefineProposer:
    """The proposer of a prepared sweep with a `refine:` block, over its candidate grid."""
    from ablate.estimate import estimate_seconds

    spec = prepared.spec
    refine = spec.refine
    return RefineProposer(prepared.cells, refine, spec.seeds, refine.budget.round_size or spec.resources.max_concurrent,
                          metric=results.headline_metric(prepared.cells), cost_seconds=estimate_seconds)
