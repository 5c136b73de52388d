"""Curve statistics: mean and 95% CI over seeds, Spearman trend, saturation fits and the knee.

Two models are fitted to every curve y(x) of a count axis (x > 0):
- log-linear      y = a + b * log(x)                      (keeps growing; no plateau)
- saturating      y = p - (p - y0) * exp(-x / s)          (plateau p)
The better one is chosen by the small-sample Akaike criterion (AICc) on the seed-level points;
the saturating model must also beat the log-linear one by at least 2 AICc units (the usual
"substantial support" threshold) to be preferred, since it has one more parameter.
The knee is the smallest x at which the saturating fit reaches 95% of its rise from y(x_min)
to the plateau; its uncertainty comes from a bootstrap over seeds.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Sequence

KNEE_FRACTION = 0.95
AICC_MARGIN = 2.0


@dataclass(frozen=True)
class PointStats:
    x: float
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    values: tuple[float, ...]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """Mean and a Student-t confidence interval (the interval is the mean itself for one value)."""
    if not values:
        return None, None, None
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def point_stats(x: float, values: Sequence[float]) -> PointStats:
    mean, low, high = mean_ci(values)
    return PointStats(x=x, n=len(values), mean=mean, ci_low=low, ci_high=high, values=tuple(values))


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman rank correlation of the point means (None with fewer than 3 points or no variance)."""
    if len(xs) < 3 or len(set(ys)) < 2:
        return None
    from scipy import stats

    rho = stats.spearmanr(xs, ys).statistic
    return None if math.isnan(rho) else float(rho)


@dataclass(frozen=True)
class Fit:
    model: str  # "log_linear" | "saturating"
    params: dict[str, float]
    aicc: float
    rss: float

    def predict(self, x: float) -> float:
        p = self.params
        if self.model == "log_linear":
            return p["a"] + p["b"] * math.log(x)
        return p["plateau"] - (p["plateau"] - p["y0"]) * math.exp(-x / p["scale"])


def _aicc(rss: float, n: int, k: int) -> float:
    rss = max(rss, 1e-12)
    aic = n * math.log(rss / n) + 2 * k
    return aic + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)


def fit_log_linear(xs: Sequence[float], ys: Sequence[float]) -> Fit:
    import numpy as np

    logs = np.log(np.asarray(xs, dtype=float))
    b, a = np.polyfit(logs, np.asarray(ys, dtype=float), 1)
    rss = float(np.sum((a + b * logs - np.asarray(ys)) ** 2))
    return Fit("log_linear", {"a": float(a), "b": float(b)}, _aicc(rss, len(xs), 2), rss)


def fit_saturating(xs: Sequence[float], ys: Sequence[float]) -> Fit | None:
    import numpy as np
    from scipy.optimize import curve_fit

    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)

    def curve(v, plateau, y0, scale):
        return plateau - (plateau - y0) * np.exp(-v / scale)

    span = float(x.max() - x.min()) or 1.0
    best = None
    for scale0 in (span / 20, span / 5, span):  # several starts: the fit is not convex
        try:
            params, _ = curve_fit(curve, x, y, p0=[float(y.max()), float(y.min()), scale0],
                                  bounds=([-1e3, -1e3, 1e-6], [1e3, 1e3, 1e6]), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        rss = float(np.sum((curve(x, *params) - y) ** 2))
        if best is None or rss < best[1]:
            best = (params, rss)
    if best is None:
        return None
    (plateau, y0, scale), rss = best
    return Fit("saturating", {"plateau": float(plateau), "y0": float(y0), "scale": float(scale)},
               _aicc(rss, len(xs), 3), rss)


def choose_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[Fit | None, list[Fit]]:
    """Both fits and the chosen one (see the module docstring for the criterion)."""
    if len(set(xs)) < 3:
        return None, []
    fits = [fit_log_linear(xs, ys)]
    saturating = fit_saturating(xs, ys)
    if saturating is not None:
        fits.append(saturating)
        if saturating.aicc + AICC_MARGIN < fits[0].aicc and saturating.params["plateau"] > saturating.params["y0"]:
            return saturating, fits
    return fits[0], fits


def knee(fit: Fit | None, x_min: float, x_max: float) -> float | None:
    """Smallest x reaching KNEE_FRACTION of the rise from y(x_min) to the plateau; None without a plateau."""
    if fit is None or fit.model != "saturating":
        return None
    p = fit.params
    # y(x) - y(x_min) = (plateau - y(x_min)) * (1 - exp(-(x - x_min)/s))  ->  reach fraction f at
    # x = x_min - s * ln(1 - f).
    return x_min - p["scale"] * math.log(1 - KNEE_FRACTION)


def bootstrap_knee(points: Sequence[PointStats], x_max: float, rounds: int = 200, seed: int = 0):
    """Knee estimates from resampling each point's seed values; returns (low, high) of the 95% interval
    and the share of resamples where the saturating model was chosen."""
    rng = random.Random(seed)
    knees, chosen = [], 0
    usable = [p for p in points if p.values]
    x_min = min(p.x for p in usable)
    for _ in range(rounds):
        xs, ys = [], []
        for point in usable:
            for _ in point.values:
                xs.append(point.x)
                ys.append(rng.choice(point.values))
        fit, _ = choose_fit(xs, ys)
        value = knee(fit, x_min, x_max)
        if value is not None:
            chosen += 1
            knees.append(value)
    if not knees:
        return None, None, 0.0
    knees.sort()
    return knees[int(0.025 * len(knees))], knees[min(len(knees) - 1, int(0.975 * len(knees)))], chosen / rounds


def curve_summary(points: Sequence[PointStats], bootstrap_rounds: int = 200) -> dict:
    """Fit, knee (with bootstrap interval) and Spearman trend of one curve."""
    present = [p for p in points if p.n > 0]
    xs = [p.x for p in present for _ in p.values]
    ys = [v for p in present for v in p.values]
    summary: dict = {"spearman": spearman([p.x for p in present], [p.mean for p in present]),
                     "fit": None, "fits": [], "knee": None, "knee_ci": None, "knee_inside_range": False}
    if len({p.x for p in present}) < 3:
        return summary
    fit, fits = choose_fit(xs, ys)
    summary["fits"] = [asdict(f) for f in fits]
    summary["fit"] = asdict(fit) if fit else None
    x_min, x_max = min(p.x for p in present), max(p.x for p in present)
    knee_x = knee(fit, x_min, x_max)
    summary["knee"] = knee_x
    if knee_x is not None:
        low, high, share = bootstrap_knee(present, x_max, bootstrap_rounds)
        summary["knee_ci"] = [low, high]
        summary["knee_bootstrap_share"] = share
        summary["knee_inside_range"] = x_min < knee_x < x_max
        summary["plateau"] = fit.params["plateau"]
    return summary
