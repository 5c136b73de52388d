"""Adaptive refinement against the dense design, by simulation (no Ray, no MLflow).

    python benchmarks/refine_efficiency.py [--sweeps 10]

The calibration study's truths (benchmarks/knee_calibration.py: saturating, log-linear, linear,
declining, flat; seed-level noise sd 2 and 4 points) on count axes whose candidates are finer
than its designs, as a refined sweep would list them:
- clusters:            train_clusters, 1 to 12 clusters added cumulatively (every count);
- instances_per_task:  powers of 2 from 1 to 256 (the calibration design itself);
- num_tasks:           num_train_tasks, every integer from 1 to 27.
The dense design measures every candidate x 3 seeds (0-2), fitted by `curve_summary` (what
`ablate report` prints). The adaptive one is `ablate.refine.RefineProposer` (the proposer of
`ablate sweep` with a refine block) over the candidate grid built by `ablate.plan.expand_grid`,
with the spec a refined sweep would give: goal knee ratio 1.1 (--ratio: tighter than either design
usually reaches, so the budget decides), budget.cells 0.75 x the dense design's cells (--budget:
a refinement that finds no knee stops before it, so the average is lower; the target is on the average),
initial design 4 points x 2 seeds, round size 2, seeds 0-5 (--seeds: the refinement may add up
to 6 seeds where they narrow the knee's interval; the dense design has 3 everywhere). Each
finished cell's metrics are simulated (the score a cell logs, read by the proposer through the
report's mean line); both designs see the same noise for the same cell.
It prints, per design and truth and overall, with targets and PASS/FAIL:
- cells used, adaptive / dense (<= 0.4 on average);
- coverage of the true knee by the adaptive interval (>= 93%), false knees under non-saturating
  truths (<= 5%), correct outcome labels (>= 90%);
- median knee-interval width (upper / lower end), adaptive / dense (<= 1.0; saturating truths
  where both give a bounded interval).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

from ablate import results
from ablate.analyse.stats import curve_summary, point_stats
from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.plan import expand_grid
from ablate.refine import RefineProposer, x_of
from ablate.spec import SweepSpec

NOISE = (2.0, 4.0)
SEEDS = [0, 1, 2]  # the dense design's
TARGETS = {"cells_ratio": (0.4, "<="), "coverage": (0.93, ">="), "false_knees": (0.05, "<="),
           "correct_labels": (0.90, ">="), "width_ratio": (1.0, "<=")}
CLUSTERS = list(DEFAULT_CLUSTERS)[:12]
DESIGNS = {  # axis, axis values in the spec, refine candidates, log scale
    "clusters": ("train_clusters", {"cumulative": CLUSTERS}, None, False),
    "instances_per_task": ("instances_per_task", None, {"low": 1, "high": 256, "every": "power_of_2"}, True),
    "num_tasks": ("num_train_tasks", None, {"low": 1, "high": 27, "every": "integer"}, True),
}
BASE = {"name": "refine-benchmark", "data": {"source": "synthetic", "instances_per_task": 8}, "model": "t5-tiny",
        "train": {"steps": 10, "batch_size": 4, "learning_rate": 1e-3, "max_source_length": 64,
                  "max_target_length": 8, "encoding": "def"}, "seeds": SEEDS}


def candidate_grid(design: str, ratio: float = 1.1, budget: float = 0.75, seeds: int = 6):
    """The refined sweep's spec and candidate grid (seeds 0 to `seeds` - 1), its budget `budget`
    x the dense design's cells (every candidate x SEEDS)."""
    axis, values, candidates, _ = DESIGNS[design]
    refine = {"axis": axis, "goal": {"kind": "knee", "ratio": ratio}, "initial": {"points": 4, "seeds": 2},
              "budget": {"cells": 10_000, "round_size": 2}}
    if candidates:
        refine["candidates"] = candidates
    raw = {**BASE, "seeds": list(range(max(seeds, len(SEEDS)))), "axes": {axis: values} if values else {},
           "refine": refine}
    dense = [c for c in expand_grid(SweepSpec.model_validate(raw), "simulated")
             if not c.settings.untuned and c.settings.seed in SEEDS]
    raw["refine"]["budget"]["cells"] = max(1, int(budget * len(dense)))
    spec = SweepSpec.model_validate(raw)
    return spec, expand_grid(spec, "simulated")


def truths(xs: list[float], log_scale: bool):
    """As benchmarks/knee_calibration.py: the same five truths over the candidates' range."""
    u = [math.log(x) if log_scale else x for x in xs]
    u0, span, x0, x1 = u[0], u[-1] - u[0], xs[0], xs[-1]
    scale = 0.5 * span / math.log(20)
    knee_u = u0 + scale * math.log(20)
    to_u = (lambda x: math.log(x)) if log_scale else (lambda x: x)
    return {
        "saturating": (lambda x: 70 - 60 * math.exp(-(to_u(x) - u0) / scale), "saturating",
                       math.exp(knee_u) if log_scale else knee_u),
        "log-linear": (lambda x: 10 + 50 * (to_u(x) - u0) / span, "growing", None),
        "linear": (lambda x: 10 + 50 * (x - x0) / (x1 - x0), "growing", None),
        "declining": (lambda x: 60 - 40 * (to_u(x) - u0) / span, "declining", None),
        "flat": (lambda x: 40.0, "flat", None),
    }


def run_adaptive(spec, cells, score) -> tuple[dict, int]:
    """The refinement to its stop, every proposed cell 'finished' with its simulated score."""
    proposer = RefineProposer(cells, spec.refine, spec.seeds, round_size=spec.refine.budget.round_size,
                              metric="rougeL")
    key = results.MetricKey("def", "rougeL").key()
    finished: dict[str, dict[str, float]] = {}
    index = 0
    while (proposal := proposer.propose(index, finished)) is not None:
        for cell in proposal.cells:
            finished.setdefault(cell.id, {key: score(cell)})
        index += 1
    refit = proposer.refit({cid: m[key] for cid, m in finished.items()})
    summary = refit.summary
    return summary, len(finished)


def judge(summary: dict, label: str, true_knee: float | None) -> dict:
    outcome = summary.get("outcome")
    named = outcome == label or (label == "saturating" and outcome == "saturating beyond the range")
    found = {"label": named, "covered": None, "false_knee": None, "width": None}
    if true_knee is not None and summary.get("knee") is not None:
        low, high = summary["knee_ci"]
        found["covered"] = low <= true_knee and (high is None or true_knee <= high)
        found["width"] = high / low if high is not None and low > 0 else None
    if true_knee is None:
        found["false_knee"] = summary.get("knee") is not None and summary.get("knee_inside_range", False)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweeps", type=int, default=10, help="simulated sweeps per design, truth and noise level")
    parser.add_argument("--ratio", type=float, default=1.1, help="the goal: knee interval upper / lower end")
    parser.add_argument("--budget", type=float, default=0.75, help="refine.budget.cells: this x the dense design's cells")
    parser.add_argument("--seeds", type=int, default=6, help="the refined sweep's seeds (0 to N-1); the dense design's "
                                                              "are 0-2")
    parser.add_argument("--designs", nargs="*", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--truths", nargs="*", default=None, help="only these truths (e.g. saturating)")
    args = parser.parse_args()
    began = time.time()
    rng = np.random.default_rng(2026)
    rows, ratios, widths = [], [], []
    by_design: dict[str, list[float]] = {}  # width ratios, adaptive / dense, per design
    tally = {"covered": [], "false_knee": [], "label": []}
    for design in args.designs:
        spec, cells = candidate_grid(design, args.ratio, args.budget, args.seeds)
        axis, _, _, log_scale = DESIGNS[design]
        cells = [c for c in cells if not c.settings.untuned]
        dense_cells = [c for c in cells if c.settings.seed in SEEDS]
        xs = sorted({x_of(axis, c.axis_values[axis]) for c in cells})
        for truth, (curve, label, true_knee) in truths(xs, log_scale).items():
            if args.truths and truth not in args.truths:
                continue
            for noise in NOISE:
                row = {"labels": [], "ratio": [], "covered": [], "false": [], "dense_labels": []}
                for i in range(args.sweeps):
                    noise_of = {c.id: float(rng.normal(0, noise)) for c in cells}

                    def score(cell):
                        return curve(x_of(axis, cell.axis_values[axis])) + noise_of[cell.id]

                    adaptive, used = run_adaptive(spec, cells, score)
                    dense_points = [point_stats(x, [score(c) for c in dense_cells if x_of(axis, c.axis_values[axis]) == x])
                                    for x in xs]
                    dense = curve_summary(dense_points, log_scale=log_scale)
                    got, dense_got = judge(adaptive, label, true_knee), judge(dense, label, true_knee)
                    row["labels"].append(got["label"])
                    row["dense_labels"].append(dense_got["label"])
                    row["ratio"].append(used / len(dense_cells))
                    tally["label"].append(got["label"])
                    if got["covered"] is not None:
                        row["covered"].append(got["covered"])
                        tally["covered"].append(got["covered"])
                    if got["false_knee"] is not None:
                        row["false"].append(got["false_knee"])
                        tally["false_knee"].append(got["false_knee"])
                    if got["width"] and dense_got["width"]:
                        widths.append(got["width"] / dense_got["width"])
                        by_design.setdefault(design, []).append(widths[-1])
                ratios += row["ratio"]
                rows.append((design, truth, noise, row))
                print(f"  {design} {truth} sd {noise:g}: cells {sum(row['ratio']) / len(row['ratio']):.2f}, "
                      f"labels {sum(row['labels'])}/{len(row['labels'])} (dense {sum(row['dense_labels'])}), "
                      f"covered {sum(row['covered'])}/{len(row['covered'])}, false knees {sum(row['false'])}",
                      flush=True)
    print(f"{'design':<20} {'truth':<11} {'noise':>5} {'cells':>6} {'labels':>7} {'dense':>6} {'cover':>6} {'false':>6}")
    mean = lambda v: f"{sum(v) / len(v):.2f}" if v else "-"
    for design, truth, noise, row in rows:
        print(f"{design:<20} {truth:<11} {noise:>5.1f} {mean(row['ratio']):>6} {mean(row['labels']):>7} "
              f"{mean(row['dense_labels']):>6} {mean(row['covered']):>6} {mean(row['false']):>6}")
    figures = {"cells_ratio": sum(ratios) / len(ratios),
               "coverage": sum(tally["covered"]) / max(len(tally["covered"]), 1),
               "false_knees": sum(tally["false_knee"]) / max(len(tally["false_knee"]), 1),
               "correct_labels": sum(tally["label"]) / max(len(tally["label"]), 1),
               "width_ratio": statistics.median(widths) if widths else math.nan}
    print(f"\n{len(ratios)} simulated refinements in {time.time() - began:.0f} s "
          f"({len(tally['covered'])} knees for a saturating truth, {len(widths)} interval pairs)")
    for design, found in by_design.items():
        print(f"median width ratio, {design}: {statistics.median(found):.2f} ({len(found)} pairs, "
              f"{sum(w <= 1 for w in found)} <= 1)")
    failed = 0
    for name, value in figures.items():
        target, sign = TARGETS[name]
        ok = value <= target if sign == "<=" else value >= target
        failed += not ok
        print(f"{name:<15} {value:6.3f}   target {sign} {target:.2f}   {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
