"""Curve statistics: mean and 95% CI over seeds, Spearman with an exact permutation p, saturation
fits on the scale a curve is drawn on, the knee with an interval and its support.

Point intervals are Student-t over seeds, clipped to the metric's range (`bounds`, [0, 100] for
the SuperNI metrics): the method is stated in the report's title ("95% t-interval, clipped").

Every count axis is fitted in u = log(x) when it is drawn on a log axis (tasks, instances,
parameter counts) and in u = x otherwise (clusters). Three models of y(u), u0 the smallest u:
- flat          y = c                                     (the axis makes no difference)
- trend         y = a + b (u - u0)                        (log-linear on a log axis)
- saturating    y = p - (p - y0) exp(-(u - u0) / s)       (plateau p, start y0, scale s)
Both are fitted by least squares on the seed-level points. The saturating model is fitted by
variable projection: on a grid of scales s spanning [span/50, 5 span] the model is linear in
(p, y0); the best s wins. Its bounds come from the data and the metric: p and y0 within the
metric's range [0, 100], s within the grid. A fit whose best s lies on either end of the grid,
or whose p or y0 leaves the range, is "at a bound": reported as such, never as a plateau.

The model is chosen by AICc, the noise variance counted as a parameter (k = 2, 3 and 4): a
richer model must beat every simpler one by AICC_MARGIN, and the saturating model needs at least
MIN_DISTINCT_X distinct x. Outcomes: "saturating" (rising to a plateau, knee inside the measured
range), "saturating beyond the range" (the knee lies past the largest x: no plateau reached),
"growing", "declining" (the chosen model falls), "flat" (no model beats the constant: a trend
the seed noise could make), or None (too few points).

The knee is the x at which the saturating fit reaches KNEE_FRACTION of its rise from y(u0):
u = u0 + s ln(1 / (1 - KNEE_FRACTION)). Its 95% interval spans both the profile-likelihood
interval over s (an F test on the residual sum of squares) and the middle 95% of the knees of
paired bootstrap resamples (seeds resampled together across points, BOOTSTRAP_ROUNDS times; a
resample that chooses no knee counts as an infinite knee). Its upper end is open (None) when the
data cannot bound it: the profile reaches the grid's top, or more than 2.5% of the resamples
choose no knee. The share of resamples that choose a knee is reported beside every knee
("support"). benchmarks/knee_calibration.py measures the coverage of this interval.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass
from typing import Sequence

KNEE_FRACTION = 0.95
AICC_MARGIN = 2.0
MIN_DISTINCT_X = 5
METRIC_RANGE = (0.0, 100.0)
BOOTSTRAP_ROUNDS = 1000
EXACT_SPEARMAN_MAX_N = 9  # 9! = 362,880 permutations; beyond, a seeded Monte-Carlo permutation test
_SCALES = 200


@dataclass(frozen=True)
class PointStats:
    x: float
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    values: tuple[float, ...]


def mean_ci(values: Sequence[float], confidence: float = 0.95,
            bounds: tuple[float, float] = METRIC_RANGE) -> tuple[float | None, float | None, float | None]:
    """Mean and a Student-t confidence interval over seeds, clipped to the metric's range `bounds`
    (a t-interval over two or three seeds can reach past either end: ROUGE-L below 0). Clipping
    keeps the interval's coverage (the true mean lies in the range) and only removes impossible
    values. With one value there is no interval (None, None)."""
    if not values:
        return None, None, None
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, None, None
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    low, high = bounds
    return mean, max(low, mean - half), min(high, mean + half)


def point_stats(x: float, values: Sequence[float], bounds: tuple[float, float] = METRIC_RANGE) -> PointStats:
    mean, low, high = mean_ci(values, bounds=bounds)
    return PointStats(x=x, n=len(values), mean=mean, ci_low=low, ci_high=high, values=tuple(values))


def spearman(xs: Sequence[float], ys: Sequence[float]) -> dict | None:
    """Spearman's rho of the point means, with n and a two-sided permutation p (exact for n <= 9).
    None with fewer than 3 points or no variance."""
    import numpy as np
    from scipy import stats

    if len(xs) < 3 or len(set(ys)) < 2 or len(set(xs)) < 2:
        return None
    rx, ry = stats.rankdata(xs), stats.rankdata(ys)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    n = len(xs)
    exact = n <= EXACT_SPEARMAN_MAX_N
    permuted = ry[_permutations(n) if exact else np.random.default_rng(0).permuted(np.tile(np.arange(n), (100_000, 1)),
                                                                                 axis=1)]
    centred = permuted - permuted.mean(axis=1, keepdims=True)
    rx_c = rx - rx.mean()
    rhos = centred @ rx_c / (np.sqrt((centred ** 2).sum(axis=1)) * np.sqrt((rx_c ** 2).sum()))
    p = float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))
    return {"rho": rho, "n": n, "p": p, "exact": exact}


@functools.lru_cache(maxsize=16)
def _permutations(n: int):
    import numpy as np

    return np.array(list(itertools.permutations(range(n))))


@dataclass(frozen=True)
class Fit:
    model: str  # "flat" | "trend" | "saturating"
    params: dict[str, float]
    aicc: float
    rss: float
    at_bound: bool = False

    def predict(self, u: float) -> float:
        p = self.params
        if self.model == "flat":
            return p["c"]
        if self.model == "trend":
            return p["a"] + p["b"] * (u - p["u0"])
        return p["plateau"] - (p["plateau"] - p["y0"]) * math.exp(-(u - p["u0"]) / p["scale"])


def aicc(rss: float, n: int, k: int) -> float:
    """Small-sample Akaike criterion of a least-squares fit with k parameters (noise variance included)."""
    rss = max(rss, 1e-12)
    aic = n * math.log(rss / n) + 2 * k
    return aic + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)


def _scales(span: float):
    import numpy as np

    return span * np.logspace(math.log10(1 / 50), math.log10(5), _SCALES)


def _trend(u, Y):
    """Least-squares lines through each row of Y (R x n): intercepts, slopes, RSS."""
    import numpy as np

    design = np.column_stack([np.ones_like(u), u - u.min()])
    coef, *_ = np.linalg.lstsq(design, Y.T, rcond=None)
    rss = ((Y - (design @ coef).T) ** 2).sum(axis=1)
    return coef[0], coef[1], rss


def _flat(Y):
    """RSS of the constant model (each row's mean) for each row of Y (R x n)."""
    return ((Y - Y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)


def _saturating(u, Y, bounds: tuple[float, float] = METRIC_RANGE):
    """Variable projection over the scale grid for each row of Y (R x n): per row, the best scale
    index, plateau, start, RSS, whether (p, y0) are in the metric's range at that scale, and the
    RSS profile over the grid (R x scales)."""
    import numpy as np

    scales = _scales(float(u.max() - u.min()))
    low, high = bounds
    profile, plateaus, starts = [], [], []
    for s in scales:
        e = np.exp(-(u - u.min()) / s)
        design = np.column_stack([1 - e, e])
        coef, *_ = np.linalg.lstsq(design, Y.T, rcond=None)
        profile.append(((Y - (design @ coef).T) ** 2).sum(axis=1))
        plateaus.append(coef[0])
        starts.append(coef[1])
    profile, plateaus, starts = np.array(profile).T, np.array(plateaus).T, np.array(starts).T
    in_range = (plateaus >= low - 1e-6) & (plateaus <= high + 1e-6) & (starts >= low - 1e-6) & (starts <= high + 1e-6)
    best = profile.argmin(axis=1)
    rows = np.arange(len(Y))
    return best, plateaus[rows, best], starts[rows, best], profile[rows, best], in_range[rows, best], profile


def _choose(n: int, distinct: int, flat_rss, trend_rss, slope, best, plateau, start, sat_rss, in_range):
    """Outcome codes per row: 0 growing, 1 declining, 2 saturating (rising), 3 flat, plus whether
    the saturating fit is usable (not at a bound) and the AICc values."""
    import numpy as np

    flat_aicc = np.array([aicc(r, n, 2) for r in flat_rss])
    trend_aicc = np.array([aicc(r, n, 3) for r in trend_rss])
    sat_aicc = np.array([aicc(r, n, 4) for r in sat_rss])
    usable = in_range & (best > 0) & (best < _SCALES - 1)
    sat_wins = usable & (distinct >= MIN_DISTINCT_X) & (sat_aicc + AICC_MARGIN < np.minimum(trend_aicc, flat_aicc))
    trend_wins = trend_aicc + AICC_MARGIN < flat_aicc
    outcome = np.where(trend_wins, np.where(slope >= 0, 0, 1), 3)
    outcome = np.where(sat_wins & (plateau > start), 2, outcome)
    outcome = np.where(sat_wins & (plateau <= start), 1, outcome)
    return outcome, sat_wins, usable, flat_aicc, trend_aicc, sat_aicc


def _to_x(u: float, log_scale: bool) -> float:
    return math.exp(u) if log_scale else u


def _paired_resamples(points: Sequence[PointStats], rounds: int, seed: int):
    """Y (rounds x n): seeds resampled with replacement, the same seed indices at every point."""
    import numpy as np

    width = max(p.n for p in points)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, width, size=(rounds, width))
    # each rounds x n: a point with fewer seeds than the widest takes the first n picks (mod n), so
    # the resample has as many values per point as the data (unequal seeds: a failed cell, a refinement)
    columns = [np.asarray(p.values)[picks[:, :p.n] % p.n] for p in points]
    return np.concatenate(columns, axis=1)


def curve_summary(points: Sequence[PointStats], log_scale: bool = True, bootstrap_rounds: int = BOOTSTRAP_ROUNDS,
                  seed: int = 0, bounds: tuple[float, float] = METRIC_RANGE) -> dict:
    """Fits, outcome, knee (interval and support) and Spearman trend of one curve."""
    import numpy as np
    from scipy import stats

    present = [p for p in points if p.n > 0]
    summary: dict = {"scale": "log" if log_scale else "linear", "outcome": None, "fit": None, "fits": [],
                     "knee": None, "knee_ci": None, "knee_support": None, "knee_inside_range": False,
                     "spearman": spearman([p.x for p in present], [p.mean for p in present])}
    if len({p.x for p in present}) < 3 or (log_scale and any(p.x <= 0 for p in present)):
        return summary
    u = np.array([math.log(p.x) if log_scale else p.x for p in present for _ in p.values], dtype=float)
    y = np.array([v for p in present for v in p.values], dtype=float)
    n, distinct, u0 = len(y), len({p.x for p in present}), float(u.min())
    a, b, trend_rss = _trend(u, y[None, :])
    flat_rss = _flat(y[None, :])
    best, plateau, start, sat_rss, in_range, profile = _saturating(u, y[None, :], bounds)
    outcome, sat_wins, usable, flat_aicc, trend_aicc, sat_aicc = _choose(n, distinct, flat_rss, trend_rss, b, best,
                                                                         plateau, start, sat_rss, in_range)
    scales = _scales(float(u.max() - u0))
    flat = Fit("flat", {"c": float(y.mean())}, float(flat_aicc[0]), float(flat_rss[0]))
    trend = Fit("trend", {"a": float(a[0]), "b": float(b[0]), "u0": u0}, float(trend_aicc[0]), float(trend_rss[0]))
    saturating = Fit("saturating", {"plateau": float(plateau[0]), "y0": float(start[0]), "scale": float(scales[best[0]]),
                                    "u0": u0}, float(sat_aicc[0]), float(sat_rss[0]), at_bound=not bool(usable[0]))
    code = int(outcome[0])
    chosen = saturating if bool(sat_wins[0]) else trend if code in (0, 1) else flat
    summary["fits"] = [asdict(flat), asdict(trend), asdict(saturating)]
    summary["fit"] = asdict(chosen)
    summary["outcome"] = {0: "growing", 1: "declining", 2: "saturating", 3: "flat"}[code]
    if code != 2:
        return summary

    x_min, x_max = min(p.x for p in present), max(p.x for p in present)
    log_gain = math.log(1 / (1 - KNEE_FRACTION))
    knee = _to_x(u0 + saturating.params["scale"] * log_gain, log_scale)
    # Profile interval over s: scales whose best RSS passes an F test against the minimum.
    allowed = sat_rss[0] * (1 + stats.f.ppf(0.95, 1, n - 4) / (n - 4))
    inside = np.where(profile[0] <= allowed)[0]
    # Widened by one grid step each way: the continuous interval's ends lie between grid points.
    first, last = max(int(inside.min()) - 1, 0), int(inside.max()) + 1
    low = _to_x(u0 + scales[first] * log_gain, log_scale)
    high = _to_x(u0 + scales[last] * log_gain, log_scale) if last < _SCALES - 1 else None
    # Support: the share of paired bootstrap resamples that choose a rising saturating fit.
    Y = _paired_resamples(present, bootstrap_rounds, seed)
    _, rb, rt = _trend(u, Y)
    r_best, r_plateau, r_start, r_rss, r_range, _ = _saturating(u, Y, bounds)
    r_outcome, *_ = _choose(n, distinct, _flat(Y), rt, rb, r_best, r_plateau, r_start, r_rss, r_range)
    support = float(np.mean(r_outcome == 2))
    # The interval holds the profile interval and the middle 95% of the resamples' knees (a resample
    # without a knee counts as an infinite one), whichever is wider on each side.
    knees = np.where(r_outcome == 2, u0 + scales[r_best] * log_gain, np.inf)
    boot_low, boot_high = np.quantile(knees, [0.025, 0.975], method="inverted_cdf")
    low = min(low, _to_x(float(boot_low), log_scale)) if np.isfinite(boot_low) else low
    if high is not None:
        high = max(high, _to_x(float(boot_high), log_scale)) if np.isfinite(boot_high) else None
    summary.update(knee=knee, knee_ci=[low, high], knee_support=support, knee_inside_range=x_min < knee < x_max,
                   plateau=saturating.params["plateau"])
    summary["outcome"] = "saturating" if x_min < knee < x_max else "saturating beyond the range"
    return summary


def bootstrap_knees(points: Sequence[PointStats], log_scale: bool = True, bootstrap_rounds: int = BOOTSTRAP_ROUNDS,
                    seed: int = 0, bounds: tuple[float, float] = METRIC_RANGE) -> list[float]:
    """The knees (on the drawn scale: u = log x on a log axis) of the paired bootstrap resamples
    that choose a rising saturating fit, as `curve_summary` draws them (same resamples for the
    same seed); resamples that choose no knee are left out, so len / bootstrap_rounds is the
    support. Empty with fewer than MIN_DISTINCT_X distinct x."""
    import numpy as np

    present = [p for p in points if p.n > 0]
    if len({p.x for p in present}) < MIN_DISTINCT_X or (log_scale and any(p.x <= 0 for p in present)):
        return []
    u = np.array([math.log(p.x) if log_scale else p.x for p in present for _ in p.values], dtype=float)
    n, distinct, u0 = len(u), len({p.x for p in present}), float(u.min())
    Y = _paired_resamples(present, bootstrap_rounds, seed)
    _, rb, rt = _trend(u, Y)
    r_best, r_plateau, r_start, r_rss, r_range, _ = _saturating(u, Y, bounds)
    r_outcome, *_ = _choose(n, distinct, _flat(Y), rt, rb, r_best, r_plateau, r_start, r_rss, r_range)
    scales = _scales(float(u.max() - u0))
    knees = u0 + scales[r_best] * math.log(1 / (1 - KNEE_FRACTION))
    return [float(k) for k in knees[r_outcome == 2]]
