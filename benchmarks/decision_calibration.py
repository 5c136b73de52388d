"""Calibration of ablate's paired comparisons and decision reliability, by simulation.

    python benchmarks/decision_calibration.py [--reps 200]      (a few minutes on 2 cores)

Sweeps are simulated from per-instance outcome models with known truths and run through the
functions the report and `ablate compare` use (ablate.analyse.compare). A setting j, seed s and
test instance i of task t score
    logit = task_t + instance_i + delta_j + shared_s + own_js + interaction_ji
    exact match:  Bernoulli(sigmoid(logit)) x 100
    ROUGE:        Beta(5 m, 5 (1 - m)) x 100, m = sigmoid(logit)  (bounded, continuous)
task sd 1.0, instance sd 1.5 (logits), shared seed sd 0.25 (a seed's luck common to every
setting: same data order and initialisation), own seed sd 0.12, setting x instance sd 0.3;
DESIGN: 3 seeds, 10 test tasks x 30 instances. The true difference of two settings is the
expected score difference on these test tasks (over new instances and seeds), by Gauss-Hermite
quadrature. It prints, with targets and PASS/FAIL:
- family-wise false-positive rate over a null 4-setting matrix (6 pairs, Holm) <= 5%;
- false discovery rate over a matrix with 3 equal and 2 better settings (10 pairs, BH) <= 5%;
- coverage of the true difference by the paired 95% interval >= 93%;
- power at stated effects (0.15 and 0.4 logits, ~2.5 and ~7 points): the paired test vs the
  comparison of the two points' own t-intervals (non-overlap); the paired test must be higher;
- decision reliability: predicted P(the winner holds) vs simulated re-run agreement (fresh seeds,
  same test set) over sweeps whose true spread is drawn from U(0, 0.5) logits, binned by the
  prediction: the calibration error (the sweep-weighted mean gap over the bins) within 5 points,
  each bin's gap printed with its sampling sd; beside the plain seed bootstrap's, and (reported,
  not judged) the figures at three fixed spreads.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from ablate.analyse.compare import (compare_settings, comparison_pairs, decision_reliability,
                                    naive_bootstrap_reliability, paired_compare, unpaired_overlap_significant)

SEEDS, TASKS, PER_TASK = 3, 10, 30
SD = {"task": 1.0, "instance": 1.5, "shared": 0.25, "own": 0.12, "interaction": 0.3}
ROUGE_CONCENTRATION = 5.0
ROUNDS, PERMUTATIONS = 500, 2000  # fewer than the report's 2000 / 10,000: the benchmark runs thousands
TARGETS = {"fwer": 0.05, "fdr": 0.05, "coverage": 0.93, "reliability_gap": 0.05}
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def draw_world(rng, settings: int):
    """The test set's fixed parts: task effects, instance effects, setting x instance interactions."""
    task_effects = rng.normal(0, SD["task"], TASKS)
    tasks = np.repeat(np.arange(TASKS), PER_TASK)
    instance = task_effects[tasks] + rng.normal(0, SD["instance"], len(tasks))
    interaction = rng.normal(0, SD["interaction"], (settings, len(tasks)))
    return task_effects, tasks, instance, interaction


def simulate(deltas, rng, metric: str, seeds: int = SEEDS, world=None):
    """Scores (settings x seeds x instances, 0-100), task of each instance, task effects. A re-run
    passes the first run's `world` (same test set) and draws fresh seeds."""
    k = len(deltas)
    task_effects, tasks, instance, interaction = world or draw_world(rng, k)
    shared = rng.normal(0, SD["shared"], seeds)
    own = rng.normal(0, SD["own"], (k, seeds))
    logit = (instance[None, None, :] + np.asarray(deltas)[:, None, None] + shared[None, :, None]
             + own[:, :, None] + interaction[:, None, :])
    m = _sigmoid(logit)
    if metric == "exact_match":
        scores = (rng.random(m.shape) < m).astype(float)
    else:
        scores = rng.beta(ROUGE_CONCENTRATION * m, ROUGE_CONCENTRATION * (1 - m))
    return 100 * scores, tasks, task_effects


def true_difference(delta_a: float, delta_b: float, task_effects) -> float:
    """Expected score difference on these tasks over new instances and seeds (quadrature)."""
    spread = math.sqrt(SD["instance"] ** 2 + SD["shared"] ** 2 + SD["own"] ** 2 + SD["interaction"] ** 2)
    weights = _WEIGHTS / _WEIGHTS.sum()

    def mean(delta):
        return float(np.mean([weights @ _sigmoid(t + delta + spread * _NODES) for t in task_effects]))

    return 100 * (mean(delta_a) - mean(delta_b))


def _settings(scores):
    return {j: scores[j] for j in range(len(scores))}


def family_wise(reps, rng, metric):
    deltas = [0.0] * 4
    pairs = comparison_pairs(range(4), numeric=False)
    hits = 0
    for _ in range(reps):
        scores, tasks, _ = simulate(deltas, rng, metric)
        found = compare_settings(_settings(scores), pairs, tasks, correction="holm", rounds=ROUNDS,
                                 permutations=PERMUTATIONS, seed=int(rng.integers(1 << 30)))
        hits += any(f["significant"] for f in found)
    return hits / reps


def false_discovery(reps, rng, metric):
    deltas = [0.0, 0.0, 0.0, 0.3, 0.6]
    pairs = comparison_pairs(range(5), numeric=False)
    ratios, discoveries = [], 0
    for _ in range(reps):
        scores, tasks, _ = simulate(deltas, rng, metric)
        found = compare_settings(_settings(scores), pairs, tasks, correction="bh", rounds=ROUNDS,
                                 permutations=PERMUTATIONS, seed=int(rng.integers(1 << 30)))
        significant = [f for f in found if f["significant"]]
        false = [f for f in significant if deltas[f["a"]] == deltas[f["b"]]]
        discoveries += len(significant)
        ratios.append(len(false) / len(significant) if significant else 0.0)
    return float(np.mean(ratios)), discoveries / reps


def coverage_and_power(reps, rng, metric, effect):
    covered, paired_hits, unpaired_hits = 0, 0, 0
    for _ in range(reps):
        scores, tasks, task_effects = simulate([effect, 0.0], rng, metric)
        truth = true_difference(effect, 0.0, task_effects)
        result = paired_compare(scores[0], scores[1], tasks, rounds=ROUNDS, permutations=PERMUTATIONS,
                                seed=int(rng.integers(1 << 30)))
        covered += result.ci_low <= truth <= result.ci_high
        paired_hits += result.p < 0.05
        unpaired_hits += unpaired_overlap_significant(scores[0].mean(axis=1), scores[1].mean(axis=1))
    return covered / reps, paired_hits / reps, unpaired_hits / reps


def reliability(reps, rng, spread=None, settings=4):
    """Per simulated sweep: predicted P(winner holds), the plain bootstrap's prediction, and whether
    a simulated re-run (fresh seeds, same test set) named the same winner. The true spread of the
    settings (logits) is `spread`, or drawn uniformly from [0, 0.5] per sweep."""
    rows = []
    for _ in range(reps):
        sd = rng.uniform(0, 0.5) if spread is None else spread
        deltas = rng.normal(0, sd, settings)
        world = draw_world(rng, settings)
        first, _, _ = simulate(deltas, rng, "rougeL", world=world)
        again, _, _ = simulate(deltas, rng, "rougeL", world=world)
        values = first.mean(axis=2)  # settings x seeds: each cell's score
        result = decision_reliability(values, draws=1000, seed=int(rng.integers(1 << 30)))
        rows.append((result["winner_holds"], naive_bootstrap_reliability(values, rounds=500, seed=int(rng.integers(1 << 30))),
                     float(np.argmax(values.mean(axis=1)) == np.argmax(again.mean(axis=2).mean(axis=1)))))
    return np.array(rows)


BINS = (0.0, 0.4, 0.6, 0.8, 1.01)
RELIABILITY_SWEEPS_PER_REP = 15  # cheap (no per-instance tests); a bin of 500 sweeps has a sampling sd of ~2 points


def binned_gaps(rows):
    """(low, high, sweeps, mean predicted, re-run agreement) per bin of the predicted probability."""
    found = []
    for low, high in zip(BINS[:-1], BINS[1:]):
        inside = rows[(rows[:, 0] >= low) & (rows[:, 0] < high)]
        if len(inside):
            found.append((low, min(high, 1.0), len(inside), float(inside[:, 0].mean()), float(inside[:, 2].mean())))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=200, help="simulated sweeps per figure")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    began = time.time()
    ok = True

    def verdict(passed):
        nonlocal ok
        ok &= bool(passed)
        return "PASS" if passed else "FAIL"

    print(f"decision calibration: {args.reps} simulated sweeps per figure, {SEEDS} seeds, {TASKS} tasks x "
          f"{PER_TASK} instances; bootstrap {ROUNDS}, permutations {PERMUTATIONS}")
    for metric in ("exact_match", "rougeL"):
        fwer = family_wise(args.reps, rng, metric)
        print(f"  {metric:<12} family-wise false-positive rate, null 4-setting matrix, Holm: {fwer:.3f} "
              f"(target <= {TARGETS['fwer']}) {verdict(fwer <= TARGETS['fwer'])}")
        fdr, per_sweep = false_discovery(args.reps, rng, metric)
        print(f"  {metric:<12} false discovery rate, 3 equal + 2 better settings, BH: {fdr:.3f} "
              f"({per_sweep:.1f} discoveries/sweep; target <= {TARGETS['fdr']}) {verdict(fdr <= TARGETS['fdr'])}")
        coverage, paired, unpaired = coverage_and_power(args.reps, rng, metric, effect=0.15)
        print(f"  {metric:<12} coverage of the true difference by the paired 95% interval: {coverage:.3f} "
              f"(target >= {TARGETS['coverage']}) {verdict(coverage >= TARGETS['coverage'])}")
        print(f"  {metric:<12} power at +0.15 logits (~2.5 points), alpha 0.05: paired {paired:.3f} vs unpaired "
              f"interval non-overlap {unpaired:.3f} (paired must be higher) {verdict(paired > unpaired)}")
        _, paired, unpaired = coverage_and_power(args.reps, rng, metric, effect=0.4)
        print(f"  {metric:<12} power at +0.4 logits (~7 points): paired {paired:.3f} vs unpaired interval non-overlap "
              f"{unpaired:.3f} (paired must be higher) {verdict(paired > unpaired)}")
    rows = reliability(RELIABILITY_SWEEPS_PER_REP * args.reps, rng)
    predicted, naive, agreed = rows.mean(axis=0)
    print(f"  reliability, 4 settings, true spread ~ U(0, 0.5) logits, {len(rows)} sweeps: mean predicted "
          f"{predicted:.3f}, plain seed bootstrap {naive:.3f}, re-run agreement {agreed:.3f}")
    bins = binned_gaps(rows)
    for low, high, count, mean_predicted, share in bins:
        print(f"    predicted in [{low:.1f}, {high:.1f}): {count:4d} sweeps, predicted {mean_predicted:.3f} vs re-run "
              f"agreement {share:.3f} (gap {abs(mean_predicted - share):.3f}, sampling sd "
              f"{math.sqrt(share * (1 - share) / count):.3f})")
    error = sum(count * abs(p - a) for _, _, count, p, a in bins) / len(rows)
    print(f"  reliability calibration error (sweep-weighted mean |predicted - re-run agreement| over the bins): "
          f"{error:.3f} (target <= {TARGETS['reliability_gap']}) {verdict(error <= TARGETS['reliability_gap'])}")
    naive_bins = binned_gaps(rows[:, [1, 1, 2]])
    naive_error = sum(count * abs(p - a) for _, _, count, p, a in naive_bins) / len(rows)
    print(f"    the plain seed bootstrap's calibration error: {naive_error:.3f} (for comparison; over-confident)")
    for label, spread in (("no true spread", 0.0), ("true spread 0.2 logits", 0.2), ("true spread 0.4 logits", 0.4)):
        fixed = reliability(args.reps, rng, spread)
        print(f"    at a fixed {label}: predicted {fixed[:, 0].mean():.3f} vs re-run agreement {fixed[:, 2].mean():.3f} "
              f"(reported, not judged: calibration holds over a range of spreads, not at each one)")
    print(f"{'PASS' if ok else 'FAIL'} in {time.time() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
