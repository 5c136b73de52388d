"""Paired comparisons between the settings of a sweep, variance components, signal-to-noise and
decision reliability. Pure functions on arrays (numpy/scipy); `instances.py` reads the arrays.

A setting is scored as a matrix Y[seed, instance] (metric units, e.g. 0-100): its cells (one per
seed) on the sweep's test instances, each instance belonging to a test task. Two settings A and
B are paired on the seeds and instances they share; D = Y_A - Y_B.

Methods (each result names its own):
- Difference: the mean of D over seeds and instances (each instance weighs the same: SuperNI's
  per-instance score, not the mean of clusters).
- Standard error from two variance components of D, seeds and instances within tasks:
      se^2 = var(seed means of D) / n_seeds + sum_t (n_t / N)^2 var_t(instance means of D) / n_t
             - MSE / (n_seeds N)
  (MSE: the seed x instance residual mean square, counted in both terms). These are the variances
  the paired bootstrap estimates when it resamples seeds, and instances within tasks, with the
  small-sample factor n / (n - 1) that the bootstrap lacks (with 3 seeds it would under-state the
  seed variance by a third). The 95% interval is diff +- q se with Cochran and Cox's critical value
  q = (v_seeds t(n_seeds - 1) + v_instances t(df_instances)) / (v_seeds + v_instances), clipped to
  the difference's range [-(hi - lo), hi - lo]. (Welch-Satterthwaite degrees of freedom are
  liberal when the seed term, with 2 df from 3 seeds, dominates: 91% coverage of simulated ROUGE
  differences; Cochran-Cox's interval covers 96-98%, conservative.)
- p: the larger of two p-values, so a comparison is significant only if both agree:
  * p_eval, exact over test instances with the trained models as they are: exact McNemar
    (two-sided `scipy.stats.binomtest` on the discordant (seed, instance) pairs) for 0/1 metrics
    such as exact match; a paired sign-flip permutation test (PERMUTATIONS random flips of the
    instance differences, averaged over seeds) for continuous metrics such as ROUGE;
  * p_rerun, the test of diff / se against the same critical values: it counts the seed
    variance a re-run would bring, which the exact tests cannot see (an instance-level test
    alone calls a seed's luck an effect).
  With one seed p_rerun does not exist and p is p_eval (stated as such).
- P(A beats B): the share of PAIRED_BOOTSTRAP rounds (seeds resampled, and instances within
  tasks, the same draws for A and B) in which A is ahead (ties count half), the resamples'
  spread widened so that their middle 95% is as wide as the interval (the same small-sample
  correction: with 3 seeds the bootstrap alone is far narrower).
- Minimum detectable effect: (q(1 - alpha/2) + q(power)) se, with alpha = 0.05 and 80% power
  (q the Cochran-Cox critical value at that level), before any multiplicity correction.
- Corrections across a sweep's comparisons: Holm (family-wise error, the default) or
  Benjamini-Hochberg (false discovery rate; `scipy.stats.false_discovery_control`).

Decision reliability (`decision_reliability`) predicts whether a re-run with fresh seeds names
the same winner (and ranking), from the seed-level point means: the seed noise of a point mean
is the residual of the setting x seed table (seeds shared by all settings, so a seed's common
luck does not count) or the pooled within-setting variance; in a normal hierarchical model the
noise, the spread of the true means (uniform prior on its sd) and the true means are drawn from
their posterior, and a re-run is drawn around them. A plain bootstrap over seeds is centred on
the observed means and so over-confident: with no true difference between 4 settings it
predicts ~70% agreement where a re-run agrees ~29% (benchmarks/decision_calibration.py
measures both).
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

ALPHA = 0.05
POWER = 0.80
PAIRED_BOOTSTRAP = 2000
PERMUTATIONS = 10_000
RELIABILITY_DRAWS = 4000
CORRECTIONS = ("holm", "bh")
NORMAL_95 = 1.959964


class PairedResult(BaseModel):
    """A paired comparison of A and B: difference, interval, tests and power."""
    model_config = ConfigDict(frozen=True, extra="forbid")

    diff: float  # mean of A - B, in metric units
    ci_low: float
    ci_high: float
    se: float
    df: float | None  # None: one seed, no re-run variance
    p: float  # max(p_eval, p_rerun); p_eval with one seed
    p_eval: float
    p_rerun: float | None
    eval_test: str  # "mcnemar" | "sign-flip"
    prob_a_beats_b: float
    mde: float | None
    n_seeds: int
    n_instances: int
    n_tasks: int
    method: str

    def to_json(self) -> dict:
        return self.model_dump()


def _task_index(tasks: Sequence) -> tuple[np.ndarray, int]:
    _, index = np.unique(np.asarray(tasks, dtype=object).astype(str), return_inverse=True)
    return index, int(index.max()) + 1 if len(index) else 0


def _is_binary(*arrays: np.ndarray, bounds: tuple[float, float]) -> bool:
    values = np.unique(np.concatenate([a.ravel() for a in arrays]))
    return bool(np.all(np.isin(values, bounds)))


def variance_components(D: np.ndarray, tasks: Sequence) -> dict:
    """Seed and instance-within-task variance of the mean of D (seeds x instances), with the
    residual counted once, and their Welch-Satterthwaite degrees of freedom."""
    n_seeds, n = D.shape
    index, n_tasks = _task_index(tasks)
    seed_means = D.mean(axis=1)
    instance_means = D.mean(axis=0)
    v_seed = float(seed_means.var(ddof=1)) / n_seeds if n_seeds > 1 else 0.0
    v_inst, df_inst = 0.0, 0
    for t in range(n_tasks):
        members = instance_means[index == t]
        if len(members) > 1:
            v_inst += (len(members) / n) ** 2 * float(members.var(ddof=1)) / len(members)
            df_inst += len(members) - 1
    if n_seeds > 1 and n > 1:
        residual = D - seed_means[:, None] - instance_means[None, :] + D.mean()
        mse = float((residual ** 2).sum()) / ((n_seeds - 1) * (n - 1))
    else:
        mse = 0.0
    overlap = mse / (n_seeds * n)
    total = max(v_seed + v_inst - overlap, v_seed, v_inst)
    terms = [(v_seed, n_seeds - 1), (v_inst, df_inst)]
    denominator = sum(v ** 2 / d for v, d in terms if d > 0 and v > 0)
    df = (sum(v for v, d in terms if d > 0) ** 2 / denominator) if denominator > 0 else math.inf
    return {"var": total, "var_seeds": v_seed, "var_instances": v_inst, "var_residual": overlap,
            "df": df if n_seeds > 1 else None, "df_seeds": n_seeds - 1, "df_instances": df_inst}


def critical_value(level, parts: dict):
    """Cochran-Cox: the variance-weighted mean of each component's t quantile at `level` (a float
    or an array of levels)."""
    from scipy import stats

    terms = [(parts["var_seeds"], parts["df_seeds"]), (parts["var_instances"], parts["df_instances"])]
    terms = [(v, d) for v, d in terms if d > 0 and v > 0]
    if not terms:
        return stats.norm.ppf(level)
    return sum(v * stats.t.ppf(level, d) for v, d in terms) / sum(v for v, _ in terms)


_ALPHAS = np.logspace(-12, 0, 600)


def _two_sided_p(statistic: float, parts: dict) -> float:
    """The alpha at which |statistic| meets the Cochran-Cox critical value (decreasing in alpha),
    interpolated in log alpha on a grid from 1e-12 to 1."""
    target = abs(statistic)
    if target == 0:
        return 1.0
    critical = critical_value(1 - _ALPHAS / 2, parts)  # decreasing
    if target >= critical[0]:
        return float(_ALPHAS[0])
    return float(np.exp(np.interp(target, critical[::-1], np.log(_ALPHAS[::-1]))))


def _stratified_counts(index: np.ndarray, n_tasks: int, rounds: int, rng) -> np.ndarray:
    """Bootstrap counts (rounds x N) of instances resampled within their tasks."""
    counts = np.zeros((rounds, len(index)))
    for t in range(n_tasks):
        members = np.flatnonzero(index == t)
        counts[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=rounds)
    return counts


def paired_bootstrap(D: np.ndarray, tasks: Sequence, rounds: int = PAIRED_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """The mean of D in `rounds` paired resamples: seeds with replacement, and instances within
    their tasks with replacement (one draw serves A and B, since D is their difference)."""
    rng = np.random.default_rng(seed)
    n_seeds, n = D.shape
    index, n_tasks = _task_index(tasks)
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=rounds)
    instance_counts = _stratified_counts(index, n_tasks, rounds, rng)
    return np.einsum("rs,si,ri->r", seed_counts, D, instance_counts) / (n_seeds * n)


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """Exact two-sided McNemar p of 0/1 outcomes a, b on the same items, with the discordant counts
    (A right and B wrong, A wrong and B right)."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, bool).ravel(), np.asarray(b, bool).ravel()
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0, 0, 0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue), only_a, only_b


def sign_flip_p(differences: np.ndarray, rounds: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided paired permutation p of the mean difference: random sign flips of each pair's
    difference, p = (1 + #{|mean*| >= |mean|}) / (1 + rounds)."""
    d = np.asarray(differences, float).ravel()
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    flipped = np.empty(rounds)
    for start in range(0, rounds, 1000):  # bounded memory for large test sets
        size = min(1000, rounds - start)
        signs = rng.integers(0, 2, size=(size, len(d)), dtype=np.int8) * 2 - 1
        flipped[start:start + size] = np.abs(signs @ d) / len(d)
    return float((1 + np.sum(flipped >= observed - 1e-12 * max(1.0, observed))) / (1 + rounds))


def paired_compare(a: np.ndarray, b: np.ndarray, tasks: Sequence, *, bounds: tuple[float, float] = (0.0, 100.0),
                   binary: bool | None = None, confidence: float = 0.95, rounds: int = PAIRED_BOOTSTRAP,
                   permutations: int = PERMUTATIONS, seed: int = 0) -> PairedResult:
    """A vs B on the same seeds (rows) and test instances (columns, `tasks` their task names).
    `binary`: the metric is 0/1 per instance (McNemar); by default, when every score is a bound."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape != b.shape or a.shape[1] != len(tasks) or a.size == 0:
        raise ValueError(f"A {a.shape} and B {b.shape} must be seeds x instances with one task per instance")
    binary = _is_binary(a, b, bounds=bounds) if binary is None else binary
    D = a - b
    n_seeds, n = D.shape
    diff = float(D.mean())
    parts = variance_components(D, tasks)
    se, df = math.sqrt(parts["var"]), parts["df"]
    if binary:
        p_eval, _, _ = mcnemar_p(a == bounds[1], b == bounds[1])
        eval_test = "mcnemar"
    else:
        p_eval, eval_test = sign_flip_p(D.mean(axis=0), permutations, seed), "sign-flip"
    span = bounds[1] - bounds[0]
    quantile = float(critical_value(0.5 + confidence / 2, parts))
    if se > 0 and df is not None:
        p_rerun = _two_sided_p(diff / se, parts)
        mde = float((critical_value(1 - ALPHA / 2, parts) + critical_value(POWER, parts)) * se)
    else:
        p_rerun = (1.0 if diff == 0 else 0.0) if df is not None else None
        mde = None if df is None else 0.0
    p = p_eval if p_rerun is None else max(p_eval, p_rerun)
    boot = paired_bootstrap(D, tasks, rounds, seed)
    spread = float(boot.std())
    # Widened so that the resamples' middle 95% spans the interval: P(A beats B) < 2.5% about when
    # the interval excludes 0 (the bootstrap alone is narrower than the t interval with few seeds).
    widened = diff + (boot - diff) * (quantile * se / (NORMAL_95 * spread) if spread > 0 else 1.0)
    prob = float(np.mean(widened > 0) + 0.5 * np.mean(widened == 0))
    low, high = max(-span, diff - quantile * se), min(span, diff + quantile * se)
    test = "exact McNemar on discordant (seed, instance) pairs" if binary else \
        f"paired sign-flip permutation test ({permutations} flips) of the instance differences"
    method = (f"paired over {n_seeds} seed(s) x {n} instance(s) in {_task_index(tasks)[1]} task(s); "
              f"{confidence:.0%} interval +-{quantile:.2f} se (Cochran-Cox t over seed and "
              f"instance-within-task variance), clipped to +-{span:g}; p = max({test}, "
              f"re-run test of diff/se)" + (" [one seed: p is the exact test alone; no re-run variance]" if df is None else "")
              + f"; P(A beats B) from {rounds} paired bootstrap resamples")
    return PairedResult(diff=diff, ci_low=float(low), ci_high=float(high), se=se, df=df, p=float(p),
                        p_eval=float(p_eval), p_rerun=p_rerun, eval_test=eval_test, prob_a_beats_b=prob,
                        mde=mde, n_seeds=n_seeds, n_instances=n, n_tasks=_task_index(tasks)[1], method=method)


def unpaired_overlap_significant(a_seed_means: Sequence[float], b_seed_means: Sequence[float],
                                 confidence: float = 0.95) -> bool:
    """The comparison a reader makes from two points' own t-intervals: significant when they do
    not overlap (the baseline the paired test is measured against)."""
    from ablate.analyse.stats import mean_ci

    _, a_low, a_high = mean_ci(list(a_seed_means), confidence, bounds=(-math.inf, math.inf))
    _, b_low, b_high = mean_ci(list(b_seed_means), confidence, bounds=(-math.inf, math.inf))
    if a_low is None or b_low is None:
        return False
    return a_low > b_high or b_low > a_high


# -- corrections -------------------------------------------------------------------------------
def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def adjust(p_values: Sequence[float], correction: str = "holm") -> list[float]:
    """Adjusted p-values: "holm" (family-wise error) or "bh" (Benjamini-Hochberg false discovery rate)."""
    if not len(p_values):
        return []
    if correction == "holm":
        return holm(p_values)
    if correction == "bh":
        from scipy.stats import false_discovery_control

        return np.asarray(false_discovery_control(np.asarray(p_values, float), method="bh")).tolist()
    raise ValueError(f"unknown correction '{correction}'; use one of {', '.join(CORRECTIONS)}")


# -- which comparisons -------------------------------------------------------------------------
def comparison_pairs(values: Sequence, numeric: bool, reference=None) -> list[tuple]:
    """Which settings of one axis to compare (as (A, B) pairs of its values).
    Categorical: every pair, or each against `reference`. Numeric: adjacent points (larger vs
    smaller) and each point against the largest ("is 64 as good as 256?"), without repeats."""
    values = list(dict.fromkeys(values))
    if not numeric:
        if reference is not None:
            if reference not in values:
                raise ValueError(f"reference {reference!r} is not one of {values}")
            return [(v, reference) for v in values if v != reference]
        return list(itertools.combinations(values, 2))
    ordered = sorted(values)
    pairs = [(ordered[i + 1], ordered[i]) for i in range(len(ordered) - 1)]
    largest = ordered[-1] if ordered else None
    pairs += [(largest, v) for v in ordered[:-2]]
    return pairs


def compare_settings(settings: dict, pairs: Sequence[tuple], tasks: Sequence, *, correction: str = "holm",
                     bounds: tuple[float, float] = (0.0, 100.0), higher_is_better: bool = True,
                     rounds: int = PAIRED_BOOTSTRAP, permutations: int = PERMUTATIONS, seed: int = 0) -> list[dict]:
    """Every pair's paired comparison with its corrected p and whether it is significant at ALPHA.
    `settings`: name -> Y[seed, instance] (already aligned on shared seeds and instances)."""
    found = []
    for a, b in pairs:
        result = paired_compare(settings[a], settings[b], tasks, bounds=bounds, rounds=rounds,
                                permutations=permutations, seed=seed)
        found.append({"a": a, "b": b, **result.to_json()})
    for entry, adjusted in zip(found, adjust([f["p"] for f in found], correction)):
        better = entry["diff"] > 0 if higher_is_better else entry["diff"] < 0
        entry.update(p_adjusted=adjusted, correction=correction, significant=bool(adjusted < ALPHA),
                     winner=(entry["a"] if better else entry["b"]) if adjusted < ALPHA else None)
    return found


# -- variance, signal-to-noise, reliability ------------------------------------------------------
def variance_shares(Y: np.ndarray, tasks: Sequence) -> dict:
    """Where the uncertainty of one setting's mean score (Y: seeds x instances) comes from, by
    moments in the model y = mu + seed + task + instance-in-task + seed x instance:
    seeds (seed and seed x instance terms: what a re-run changes), test instances within tasks,
    and task sampling (which test tasks were drawn). Each as a variance of the mean and a share."""
    Y = np.atleast_2d(np.asarray(Y, float))
    n_seeds, n = Y.shape
    index, n_tasks = _task_index(tasks)
    seed_means, instance_means = Y.mean(axis=1), Y.mean(axis=0)
    if n_seeds > 1:
        residual = Y - seed_means[:, None] - instance_means[None, :] + Y.mean()
        sigma_e = float((residual ** 2).sum()) / ((n_seeds - 1) * max(n - 1, 1))
        sigma_seed = max(0.0, float(seed_means.var(ddof=1)) - sigma_e / n)
    else:
        sigma_e, sigma_seed = 0.0, 0.0
    within = [instance_means[index == t] for t in range(n_tasks)]
    pooled_df = sum(len(w) - 1 for w in within)
    within_var = sum(float(w.var(ddof=1)) * (len(w) - 1) for w in within if len(w) > 1) / pooled_df if pooled_df else 0.0
    sigma_instance = max(0.0, within_var - sigma_e / n_seeds)
    task_means = np.array([w.mean() for w in within])
    per_task = n / n_tasks
    sigma_task = max(0.0, float(task_means.var(ddof=1)) - within_var / per_task) if n_tasks > 1 else 0.0
    parts = {"seeds": sigma_seed / n_seeds + sigma_e / (n_seeds * n), "instances": sigma_instance / n,
             "tasks": sigma_task / n_tasks}
    total = sum(parts.values())
    return {"variance_of_mean": parts, "share": {k: (v / total if total > 0 else None) for k, v in parts.items()},
            "seed_sd": math.sqrt(sigma_seed + sigma_e / n), "n_seeds": n_seeds, "n_instances": n, "n_tasks": n_tasks,
            "method": "moments in y = mu + seed + task + instance + seed x instance; variance of the setting's mean"}


def seed_noise(values: np.ndarray) -> tuple[float, int]:
    """The seed variance of one cell's score and its degrees of freedom, from a settings x seeds
    table of point scores (NaN: missing). Seeds shared by every setting: the two-way residual (a
    seed's luck common to all settings does not change a decision); otherwise pooled within settings."""
    values = np.asarray(values, float)
    k, s = values.shape
    if s > 1 and k > 1 and not np.isnan(values).any():
        residual = values - values.mean(axis=1, keepdims=True) - values.mean(axis=0, keepdims=True) + values.mean()
        df = (k - 1) * (s - 1)
        return float((residual ** 2).sum()) / df, df  # E[MS residual] = the setting-specific seed variance
    deviations, df = 0.0, 0
    for row in values:
        row = row[~np.isnan(row)]
        if len(row) > 1:
            deviations += float(((row - row.mean()) ** 2).sum())
            df += len(row) - 1
    return (deviations / df if df else math.nan), df


def signal_to_noise(values: np.ndarray) -> dict:
    """An axis's signal-to-noise: the sd of its point means over the seed sd of one cell
    (values: the axis's points x seeds). Below ~1 a re-run may well reorder the points."""
    values = np.asarray(values, float)
    means = np.nanmean(values, axis=1)
    noise, df = seed_noise(values)
    spread = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan
    snr = spread / math.sqrt(noise) if noise and noise > 0 and not math.isnan(noise) else (math.inf if spread > 0 else math.nan)
    return {"snr": snr, "spread": spread, "seed_sd": math.sqrt(noise) if noise == noise else math.nan, "df": df}


def decision_reliability(values: np.ndarray, higher_is_better: bool = True, draws: int = RELIABILITY_DRAWS,
                         seed: int = 0) -> dict:
    """Predicted probability that a re-run with as many fresh seeds (same test set) names the same
    winner, and the same full ranking, of the settings (values: settings x seeds of point scores).

    A normal hierarchical model, drawn by Monte Carlo: the seed noise variance from its scaled
    inverse chi-square posterior (`seed_noise`: estimate and degrees of freedom); the spread tau of
    the true means from its grid posterior under a uniform prior (the likelihood of the observed
    means' spread); the true means from their shrunken posterior; a re-run's means around them."""
    values = np.asarray(values, float)
    sign = 1.0 if higher_is_better else -1.0
    means = sign * np.nanmean(values, axis=1)
    counts = np.sum(~np.isnan(values), axis=1)
    k = len(means)
    noise_var, df = seed_noise(values)
    if k < 2 or not df or math.isnan(noise_var):
        return {"winner": None, "winner_holds": None, "ranking_holds": None,
                "method": "needs two settings and two seeds"}
    rng = np.random.default_rng(seed)
    sigma2 = noise_var * df / rng.chisquare(df, size=draws)  # draws
    v = sigma2[:, None] / counts[None, :]  # draws x k: variance of each point mean
    centre = float(means.mean())
    ss = float(((means - centre) ** 2).sum())
    v_mean = v.mean(axis=1)
    grid = np.linspace(0, 4 * math.sqrt(max(ss / max(k - 1, 1), noise_var / counts.min())), 200)[None, :]
    total = grid ** 2 + v_mean[:, None]  # draws x grid
    log_like = -(k - 1) / 2 * np.log(total) - ss / (2 * total)
    weights = np.exp(log_like - log_like.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights, axis=1)
    picks = (cumulative < rng.random((draws, 1)) * cumulative[:, -1:]).sum(axis=1)
    tau2 = grid[0, np.minimum(picks, grid.shape[1] - 1)][:, None] ** 2  # draws x 1
    mu = centre + np.sqrt((tau2[:, 0] + v_mean) / k) * rng.standard_normal(draws)
    shrink = tau2 / (tau2 + v)
    truth = mu[:, None] + shrink * (means[None, :] - mu[:, None]) + np.sqrt(shrink * v) * rng.standard_normal((draws, k))
    rerun = truth + np.sqrt(v) * rng.standard_normal((draws, k))
    winner = int(np.argmax(means))
    order = np.argsort(-means)
    winner_holds = float(np.mean(np.argmax(rerun, axis=1) == winner))
    ranking_holds = float(np.mean(np.all(np.argsort(-rerun, axis=1) == order, axis=1)))
    return {"winner": winner, "winner_holds": winner_holds, "ranking_holds": ranking_holds,
            "signal_sd": float(np.sqrt(tau2).mean()), "noise_sd": math.sqrt(noise_var), "df": df,
            "method": "normal hierarchical model: seed noise from the setting x seed residual, the true means' "
                      f"spread from its posterior (uniform prior), a re-run drawn around the true means; {draws} draws"}


def naive_bootstrap_reliability(values: np.ndarray, higher_is_better: bool = True, rounds: int = 2000,
                                seed: int = 0) -> float:
    """The plain bootstrap's answer (seeds resampled, the share naming the observed winner), for the
    calibration benchmark: centred on the observed means, it is over-confident."""
    values = np.asarray(values, float)
    sign = 1.0 if higher_is_better else -1.0
    rng = np.random.default_rng(seed)
    k, s = values.shape
    picks = rng.integers(0, s, size=(rounds, s))
    resampled = sign * values[:, picks].mean(axis=2).T  # rounds x k
    return float(np.mean(np.argmax(resampled, axis=1) == np.argmax(sign * values.mean(axis=1))))
