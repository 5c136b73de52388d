"""Curve statistics: CIs by hand, fit choice, knee location, Spearman."""

import math
import random

import pytest

from ablate.analyse.stats import (PointStats, choose_fit, curve_summary, knee, mean_ci, point_stats, spearman)


def test_mean_and_t_confidence_interval_by_hand():
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    # sd = 1, t(0.975, 2) = 4.302653, half width = 4.302653 / sqrt(3) = 2.484138
    assert mean == 2.0 and low == pytest.approx(2 - 2.484138, abs=1e-5) and high == pytest.approx(2 + 2.484138, abs=1e-5)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)
    assert mean_ci([]) == (None, None, None)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 25, 40]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert spearman([1, 2], [1, 2]) is None


def _noisy_points(curve, xs, seeds=3, noise=0.5, seed=0):
    rng = random.Random(seed)
    return [point_stats(x, [curve(x) + rng.gauss(0, noise) for _ in range(seeds)]) for x in xs]


def test_saturating_curve_is_recognised_and_its_knee_found_inside_the_range():
    def curve(x):
        return 80 - 60 * math.exp(-x / 16)

    xs = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    summary = curve_summary(_noisy_points(curve, xs), bootstrap_rounds=50)
    assert summary["fit"]["model"] == "saturating"
    # 95% of the rise from y(1) is reached at x = 1 + 16 ln 20 = 48.9
    assert summary["knee"] == pytest.approx(1 + 16 * math.log(20), rel=0.15)
    assert summary["knee_inside_range"] is True
    low, high = summary["knee_ci"]
    assert low <= summary["knee"] <= high
    assert summary["spearman"] > 0.9


def test_log_linear_growth_has_no_knee():
    xs = [1, 2, 4, 8, 16, 32, 64]
    summary = curve_summary(_noisy_points(lambda x: 10 + 8 * math.log(x), xs), bootstrap_rounds=20)
    assert summary["fit"]["model"] == "log_linear"
    assert summary["knee"] is None and summary["knee_inside_range"] is False


def test_too_few_points_give_no_fit():
    points = [PointStats(1, 1, 5.0, 5.0, 5.0, (5.0,)), PointStats(2, 1, 6.0, 6.0, 6.0, (6.0,))]
    assert curve_summary(points)["fit"] is None
    assert choose_fit([1, 2], [1, 2]) == (None, [])
    assert knee(None, 1, 2) is None
