"""Curve statistics: CIs by hand, fits on the drawn scale, outcomes, the knee, its interval and
support, Spearman with an exact permutation p. Simulated curves of known shape go through the
same functions as `ablate report` (benchmarks/knee_calibration.py does so at scale)."""

import math
import random

import pytest

from ablate.analyse.stats import PointStats, aicc, curve_summary, mean_ci, point_stats, spearman

INSTANCES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_mean_and_t_confidence_interval_by_hand():
    mean, low, high = mean_ci([11.0, 12.0, 13.0])
    # sd = 1, t(0.975, 2) = 4.302653, half width = 4.302653 / sqrt(3) = 2.484138
    assert mean == 12.0 and low == pytest.approx(12 - 2.484138, abs=1e-5) and high == pytest.approx(12 + 2.484138, abs=1e-5)
    assert mean_ci([5.0]) == (5.0, None, None), "one seed: no interval, not a zero-width one"
    assert mean_ci([]) == (None, None, None)


def test_intervals_are_clipped_to_the_metric_range():
    # Two seeds 0 and 40: t(0.975, 1) = 12.706, half width = 12.706 * 28.28 / sqrt(2) = 254: far past both ends.
    mean, low, high = mean_ci([0.0, 40.0])
    assert mean == 20.0 and (low, high) == (0.0, 100.0)
    mean, low, high = mean_ci([0.5, 0.9], bounds=(0.0, 1.0))
    assert (low, high) == (0.0, 1.0)
    _, low, high = mean_ci([0.0, 40.0], bounds=(-math.inf, math.inf))
    assert low == pytest.approx(20 - 254.12, abs=0.01) and high == pytest.approx(20 + 254.12, abs=0.01)
    point = point_stats(8.0, [2.0, 3.0, 60.0])
    assert point.ci_low == 0.0 and 0.0 <= point.ci_high <= 100.0


def test_spearman_gives_rho_n_and_an_exact_permutation_p():
    result = spearman([1, 2, 3], [10, 20, 25])
    # 3 points in order: 1 of 3! = 6 orderings is as extreme each way -> p = 2/6.
    assert result == {"rho": pytest.approx(1.0), "n": 3, "p": pytest.approx(2 / 6), "exact": True}
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1])["p"] == pytest.approx(2 / 24)
    assert spearman([1, 2], [1, 2]) is None


def test_aicc_counts_the_noise_variance():
    # n = 6, k = 4: 2k + 2k(k+1)/(n-k-1) = 8 + 40 = 48 on top of n log(RSS/n).
    assert aicc(6.0, 6, 4) == pytest.approx(6 * math.log(1.0) + 48)


def _points(curve, xs, seeds=3, noise=2.0, seed=0):
    rng = random.Random(seed)
    return [point_stats(x, [curve(x) + rng.gauss(0, noise) for _ in range(seeds)]) for x in xs]


def _saturating_in_log_x(knee_x: float, x_min: float = 1.0):
    """y = 70 - 60 exp(-(log x - log x_min) / s), with its 95% knee at knee_x."""
    scale = math.log(knee_x / x_min) / math.log(20)
    return lambda x: 70 - 60 * math.exp(-(math.log(x) - math.log(x_min)) / scale)


def test_a_curve_saturating_in_log_x_gets_its_knee_with_an_interval_and_support():
    summary = curve_summary(_points(_saturating_in_log_x(16.0), INSTANCES))
    assert summary["outcome"] == "saturating" and summary["scale"] == "log"
    assert summary["knee"] == pytest.approx(16.0, rel=0.35)
    low, high = summary["knee_ci"]
    assert low <= 16.0 and (high is None or high >= 16.0) and low <= summary["knee"]
    assert 0.9 <= summary["knee_support"] <= 1.0


def test_model_sizes_are_fitted_on_log_parameter_counts():
    sizes = [6e7, 2.2e8, 7.7e8, 3e9, 1.1e10]
    summary = curve_summary(_points(lambda x: 10 + 6 * math.log(x / 6e7), sizes))
    assert summary["outcome"] == "growing" and summary["fit"]["model"] == "trend"
    saturating = curve_summary(_points(_saturating_in_log_x(7e8, 6e7), sizes, noise=0.5))
    assert saturating["outcome"] == "saturating" and saturating["knee"] == pytest.approx(7e8, rel=0.6)


def test_a_linear_curve_is_not_a_plateau_at_a_bound():
    summary = curve_summary(_points(lambda x: 5 + 0.3 * x, INSTANCES))
    assert summary["outcome"] == "growing" and summary["knee"] is None
    saturating = next(f for f in summary["fits"] if f["model"] == "saturating")
    assert saturating["at_bound"] or saturating["params"]["plateau"] <= 100


def test_a_falling_curve_is_declining():
    summary = curve_summary(_points(lambda x: 70 - 8 * math.log(x), INSTANCES))
    assert summary["outcome"] == "declining" and summary["knee"] is None
    falling_to_a_floor = curve_summary(_points(lambda x: 20 + 50 * math.exp(-math.log(x) / 1.2), INSTANCES, noise=1))
    assert falling_to_a_floor["outcome"] == "declining"


def test_a_curve_that_only_wobbles_is_flat_not_a_trend():
    wobble = [50.3, 50.0, 49.3, 49.7, 47.3, 47.3]  # the synthetic nli curve: at chance, seed sd about 10
    points = [point_stats(x, [m - 9, m, m + 9]) for x, m in zip([1, 2, 4, 8, 16, 32], wobble)]
    summary = curve_summary(points)
    assert summary["outcome"] == "flat" and summary["fit"]["model"] == "flat" and summary["knee"] is None
    assert summary["spearman"]["rho"] < -0.9, "the point means fall in rank, yet the fit sees no trend"
    strong = curve_summary(_points(lambda x: 10 + 6 * math.log(x), INSTANCES))
    assert strong["outcome"] == "growing"


def test_fewer_than_five_distinct_x_never_give_a_saturating_fit():
    summary = curve_summary(_points(_saturating_in_log_x(4.0), [1, 2, 4, 8], noise=0.2))
    assert summary["outcome"] == "growing" and summary["knee"] is None


def test_too_few_points_give_no_fit():
    points = [PointStats(1, 1, 5.0, None, None, (5.0,)), PointStats(2, 1, 6.0, None, None, (6.0,))]
    assert curve_summary(points)["fit"] is None and curve_summary(points)["outcome"] is None


def test_clusters_are_fitted_on_a_linear_axis():
    summary = curve_summary(_points(lambda x: 10 + 12 * x, [1, 2, 3, 4, 5]), log_scale=False)
    assert summary["scale"] == "linear" and summary["outcome"] == "growing"
