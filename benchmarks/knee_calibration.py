"""Calibration of `ablate report`'s curve statistics, by simulation (a few minutes on 2 cores).

    python benchmarks/knee_calibration.py [--sweeps 100]

Sweeps are simulated from known truths on the shipped designs (the x values of the clusters,
instances-per-task, number-of-tasks and model-size sweeps; 3 seeds; seed-level noise at two
levels, sd 2 and 4 points of ROUGE-L, about what the shipped sweeps show) and run through the
same function as `ablate report` (ablate.analyse.stats.curve_summary, on the axis's own scale).
Truths, in u = log x on log axes and u = x for clusters, over the design's range:
- saturating:  70 - 60 exp(-(u - u0) / s), its 95% knee in the middle of the range (designs with
  at least 5 distinct x only: fewer cannot show a plateau);
- log-linear:  10 + 50 (u - u0) / span (a straight line on the drawn axis);
- linear:      10 + 50 (x - x0) / (x1 - x0) (convex on a log axis);
- declining:   60 - 40 (u - u0) / span;
- flat:        40 (the axis makes no difference: any trend reported is the noise's).
It prints, with the targets and PASS/FAIL:
- coverage: the share of reported knee intervals that hold the true knee (saturating truths);
- false knees: the share of non-saturating truths reported with a knee inside the range;
- correct labels: the share of sweeps whose outcome names the truth (saturating, growing for
  log-linear and linear, declining, flat).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from ablate.analyse.stats import curve_summary, point_stats

DESIGNS = {  # x values of the shipped sweeps, and whether the report draws them on a log axis
    "clusters": ([1, 2, 3, 4, 5], False),
    "instances_per_task": ([1, 2, 4, 8, 16, 32, 64, 128, 256], True),
    "num_tasks": ([1, 2, 4, 8, 16, 27], True),
    "model_size": ([2.4e5, 1.4e6, 7.4e6], True),
}
NOISE = (2.0, 4.0)
SEEDS = 3
TARGETS = {"coverage": 0.93, "false_knees": 0.05, "correct_labels": 0.90}


def truths(xs: list[float], log_scale: bool):
    u = [math.log(x) if log_scale else x for x in xs]
    u0, span = u[0], u[-1] - u[0]
    x0, x1 = xs[0], xs[-1]
    scale = 0.5 * span / math.log(20)  # the knee half way along the drawn axis
    knee_u = u0 + scale * math.log(20)
    found = {
        "log-linear": (lambda v, x: 10 + 50 * (v - u0) / span, "growing", None),
        "linear": (lambda v, x: 10 + 50 * (x - x0) / (x1 - x0), "growing", None),
        "declining": (lambda v, x: 60 - 40 * (v - u0) / span, "declining", None),
        "flat": (lambda v, x: 40.0, "flat", None),
    }
    if len(xs) >= 5:
        found["saturating"] = (lambda v, x: 70 - 60 * math.exp(-(v - u0) / scale), "saturating",
                               math.exp(knee_u) if log_scale else knee_u)
    return u, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweeps", type=int, default=100, help="simulated sweeps per design, truth and noise level")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    began = time.time()
    covered = reported = false_knees = non_saturating = correct = total = 0
    rows = []
    for design, (xs, log_scale) in DESIGNS.items():
        u, found = truths(xs, log_scale)
        for truth, (curve, label, true_knee) in found.items():
            for noise in NOISE:
                hits = labels = knees = 0
                for i in range(args.sweeps):
                    points = [point_stats(x, list(curve(v, x) + rng.normal(0, noise, SEEDS))) for v, x in zip(u, xs)]
                    summary = curve_summary(points, log_scale=log_scale, seed=i)
                    outcome = summary["outcome"]
                    named = outcome == label or (label == "saturating" and outcome == "saturating beyond the range")
                    labels += named
                    if true_knee is not None and summary["knee"] is not None:
                        low, high = summary["knee_ci"]
                        reported += 1
                        hit = low <= true_knee and (high is None or true_knee <= high)
                        covered += hit
                        hits += hit
                    if true_knee is None:
                        non_saturating += 1
                        knee_inside = summary["knee"] is not None and summary["knee_inside_range"]
                        false_knees += knee_inside
                        knees += knee_inside
                correct += labels
                total += args.sweeps
                rows.append((design, truth, noise, labels / args.sweeps, knees / args.sweeps if true_knee is None else None))
    print(f"{'design':<20} {'truth':<11} {'noise':>5} {'labels':>7} {'false knees':>12}")
    for design, truth, noise, labels, knees in rows:
        print(f"{design:<20} {truth:<11} {noise:>5.1f} {labels:>7.2f} {'' if knees is None else f'{knees:>12.2f}'}")
    figures = {"coverage": covered / max(reported, 1), "false_knees": false_knees / max(non_saturating, 1),
               "correct_labels": correct / max(total, 1)}
    print(f"\n{total} simulated sweeps in {time.time() - began:.0f} s ({reported} reported a knee for a saturating truth)")
    failed = 0
    for name, value in figures.items():
        target = TARGETS[name]
        ok = value <= target if name == "false_knees" else value >= target
        failed += not ok
        sign = "<=" if name == "false_knees" else ">="
        print(f"{name:<15} {value:6.3f}   target {sign} {target:.2f}   {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
