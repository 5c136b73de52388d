"""A sweep's decisions: `ablate compare` (two named settings) and the report's `comparisons`
section (which settings to compare, corrected p-values, variance shares, signal-to-noise and
decision reliability). The statistics are ablate.analyse.compare's; this module picks the
settings and reads their per-instance scores (ablate.analyse.instances)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable

import numpy as np

from ablate.analyse.collect import CellRecord, SweepRecords, collect_sweep
from ablate.analyse.compare import (PairedResult, comparison_pairs, decision_reliability, paired_compare,
                                    signal_to_noise, variance_shares)
from ablate.analyse.instances import InstanceScores, paired_scores, select_setting, setting_label
from ablate.analyse.report_model import (Comparison, ComparisonGroup, Comparisons, Reliability, Report,
                                         SignalToNoise, VarianceShares, _Model)
from ablate import results
from ablate.errors import AblateError
from ablate.status import CellStatus
from ablate.track.retry import DEFAULT_RETRY_SECONDS

Reader = Callable[[CellRecord, str], "InstanceScores | None"]


class SettingComparison(PairedResult):
    """`ablate compare`: settings A and B of a sweep, paired on their test instances and seeds."""
    experiment: str
    metric: str
    encoding: str
    a: str
    b: str
    seeds: list[int]
    skipped: list[str]
    mean_a: float
    mean_b: float


def is_binary(metric: str) -> bool:
    """Whether each instance scores 0 or full marks (exact match, accuracy): McNemar's test applies."""
    spec = results.metric_specs().get(metric)
    return spec is not None and spec.per_instance == "binary"


def compare_two(sweep: SweepRecords, a: str, b: str, read: Reader, metric: str = "rougeL",
                encoding: str | None = None) -> SettingComparison:
    """The paired comparison of settings A and B (selectors as `select_setting` reads them)."""
    a_cells, b_cells = select_setting(sweep, a, "A"), select_setting(sweep, b, "B")
    if {r.cell.id for r in a_cells} == {r.cell.id for r in b_cells}:
        raise AblateError(f"A ('{a}') and B ('{b}') name the same setting.", field="B",
                          fix="name two different settings of the sweep.")
    for side, cells in (("A", a_cells), ("B", b_cells)):
        if not any(r.status == CellStatus.DONE for r in cells):
            counts = Counter(str(r.status) for r in cells)
            raise AblateError(f"{side} ({setting_label(cells[0])}) has no finished cell in '{sweep.experiment}' yet "
                              f"({', '.join(f'{n} {status}' for status, n in counts.items())}), so it has no scores "
                              "to compare.", field=side,
                              fix="run the sweep until its cells finish (`ablate plan SPEC` shows each cell's "
                                  "status), or compare settings that have finished.")
    encodings = a_cells[0].cell.settings.test_encodings
    encoding = encoding or encodings[0]
    if encoding not in encodings or encoding not in b_cells[0].cell.settings.test_encodings:
        raise AblateError(f"test encoding '{encoding}' is not tested by both settings.", field="--encoding",
                          fix=f"use one of {', '.join(e for e in encodings if e in b_cells[0].cell.settings.test_encodings)}.")
    paired = paired_scores(a_cells, b_cells, encoding, metric, read)
    if paired["a"] is None or not paired["ids"]:
        raise AblateError(f"A and B share no seed with per-instance scores on '{encoding}'"
                          + (f" (no predictions artifact: {', '.join(paired['skipped'])})" if paired["skipped"] else "")
                          + ".", field="A",
                          fix="compare finished cells that logged predictions (every sweep cell does).")
    result = paired_compare(paired["a"], paired["b"], paired["tasks"], bounds=results.metric_range(metric),
                            binary=is_binary(metric))
    return SettingComparison(experiment=sweep.experiment, metric=metric, encoding=encoding,
                             a=setting_label(a_cells[0]), b=setting_label(b_cells[0]), seeds=paired["seeds"],
                             skipped=paired["skipped"], mean_a=float(paired["a"].mean()),
                             mean_b=float(paired["b"].mean()), **result.to_json())


def make_comparison(tracking_uri: str, experiment: str, a: str, b: str, metric: str = "rougeL",
                    encoding: str | None = None, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> SettingComparison:
    from ablate.analyse.instances import cell_scores_reader

    return compare_two(collect_sweep(tracking_uri, experiment, retry_seconds), a, b,
                       cell_scores_reader(tracking_uri, metric, retry_seconds), metric, encoding)


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "<1e-4"


def compare_text(result: SettingComparison) -> str:
    lines = [f"compare '{result.experiment}' {result.metric} (test encoding {result.encoding}), "
             f"per-instance scores from the cells' predictions:",
             f"  A = {result.a}: {result.mean_a:.2f}",
             f"  B = {result.b}: {result.mean_b:.2f}",
             f"  A - B = {result.diff:+.2f} [{result.ci_low:+.2f}, {result.ci_high:+.2f}] (95%), "
             f"p = {_p(result.p)} (exact {result.eval_test} {_p(result.p_eval)}"
             + (f", re-run test {_p(result.p_rerun)}" if result.p_rerun is not None else ", one seed") + ")",
             f"  P(A beats B) = {result.prob_a_beats_b:.2f}; minimum detectable effect "
             + (f"{result.mde:.2f}" if result.mde is not None else "unknown (one seed)")
             + f" (80% power, alpha 0.05); seeds {result.seeds}, {result.n_instances} instances, "
               f"{result.n_tasks} tasks",
             f"  method: {result.method}"]
    if result.skipped:
        lines.append(f"  skipped (no predictions): {', '.join(result.skipped)}")
    return "\n".join(lines)


# -- the report's comparisons ----------------------------------------------------------------------
def _groups(sweep: SweepRecords, axis: str) -> dict[str, dict]:
    """Done cells by the other non-seed axes (a group's label), then by the axis's value label."""
    from ablate.plan import format_value

    groups: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for record in sweep.cells:
        if record.status != "done" or record.cell.settings.untuned:
            continue
        others = ", ".join(f"{k}={format_value(v)}" for k, v in record.cell.axis_values.items()
                           if k not in (axis, "seed"))
        groups[others][format_value(record.cell.axis_values[axis])].append(record)
    return groups


def sweep_comparisons(sweep: SweepRecords, axis: str, encodings: list[str], read: Reader, metric: str,
                      numeric: bool, correction: str = "holm", reference=None, rounds: int = 2000,
                      permutations: int = 10_000) -> Comparisons:
    """Paired comparisons along `axis` within each group of the other axes and each test encoding,
    corrected together (one family per sweep); variance shares of each setting; the axis's
    signal-to-noise and decision reliability per group."""
    from ablate.analyse.compare import ALPHA, adjust

    higher = results.metric_spec(metric).higher_is_better
    found, entries = [], []
    for group, by_value in _groups(sweep, axis).items():
        # by_value is keyed by the value's label ("16", "def+pos2", a clusters list "a+b+c").
        values = sorted(by_value, key=lambda v: _label_x(axis, v)) if numeric else list(by_value)
        keys = [_label_x(axis, v) for v in values] if numeric else values
        pairs = comparison_pairs(keys, numeric=numeric, reference=reference if reference in values else None)
        by_key = dict(zip(keys, values))
        for encoding in encodings:
            settings, shares, skipped = {}, {}, []
            for a, b in pairs:
                paired = paired_scores(by_value[by_key[a]], by_value[by_key[b]], encoding, metric, read)
                skipped += paired["skipped"]
                if paired["a"] is None or not paired["ids"] or len(paired["seeds"]) < 1:
                    continue
                settings[(a, b)] = paired
            for (a, b), paired in settings.items():
                result = paired_compare(paired["a"], paired["b"], paired["tasks"], bounds=results.metric_range(metric),
                                        binary=is_binary(metric), rounds=rounds,
                                        permutations=permutations)
                entries.append({"group": group, "encoding": encoding, "a": by_key[a], "b": by_key[b],
                                **result.to_json()})
                for key, side in ((a, "a"), (b, "b")):
                    label = by_key[key]
                    if label not in shares:
                        shares[label] = VarianceShares.model_validate(variance_shares(paired[side], paired["tasks"]))
            seed_table = _seed_table(by_value, values, encoding, metric, read)
            found.append(ComparisonGroup(
                group=group, encoding=encoding, variance=shares, skipped=sorted(set(skipped)),
                signal_to_noise=SignalToNoise.model_validate(signal_to_noise(seed_table))
                if seed_table is not None else None,
                reliability=Reliability.model_validate(_named(decision_reliability(seed_table, higher), values))
                if seed_table is not None else None))
    # One family per sweep: every comparison corrected with every other.
    comparisons = [Comparison(**entry, p_adjusted=adjusted, correction=correction, significant=bool(adjusted < ALPHA),
                              winner=(entry["a"] if (entry["diff"] > 0) == higher else entry["b"])
                              if adjusted < ALPHA else None)
                   for entry, adjusted in zip(entries, adjust([e["p"] for e in entries], correction))]
    return Comparisons(axis=axis, metric=metric, correction=correction, comparisons=comparisons, groups=found,
                       scores="the mean over test instances of each instance's score (from the cells' predictions)",
                       method=comparisons[0].method if comparisons else None)


def _seed_table(by_value: dict, values: list, encoding: str, metric: str, read: Reader):
    """settings x seeds of each cell's mean per-instance score (NaN where a seed is missing)."""
    seeds = sorted({r.cell.settings.seed for v in values for r in by_value[v]})
    if len(values) < 2 or len(seeds) < 2:
        return None
    table = np.full((len(values), len(seeds)), np.nan)
    for i, value in enumerate(values):
        for record in by_value[value]:
            scores = read(record, encoding)
            if scores is not None:
                table[i, seeds.index(record.cell.settings.seed)] = float(scores.scores[metric].mean())
    return None if np.isnan(table).all() else table  # no per-instance records (an evaluator without them)


def _named(reliability: dict, values: list) -> dict:
    from ablate.plan import format_value

    if reliability.get("winner") is not None:
        reliability = {**reliability, "winner": format_value(values[reliability["winner"]])}
    return reliability


def comparison_lines(section: Comparisons) -> list[str]:
    """The comparisons as text lines, for the CLI report and the parent run's description."""
    lines = [f"Paired comparisons along {section.axis} ({section.metric}, per-instance mean; p corrected by "
             f"{'Holm' if section.correction == 'holm' else 'Benjamini-Hochberg'} across the sweep):"]
    for e in section.comparisons:
        where = " ".join(x for x in (e.group, f"[{e.encoding}]") if x)
        mark = "*" if e.significant else " "
        lines.append(f"  {mark} {where} {e.a} - {e.b}: {e.diff:+.2f} [{e.ci_low:+.2f}, {e.ci_high:+.2f}], "
                     f"p_adj {_p(e.p_adjusted)}, P(A beats B) {e.prob_a_beats_b:.2f}"
                     + (f", MDE {e.mde:.2f}" if e.mde is not None else ""))
    for g in section.groups:
        snr, rel = g.signal_to_noise, g.reliability
        parts = []
        if snr is not None and snr.known:
            parts.append(f"signal-to-noise {snr.snr:.2f} (spread {snr.spread:.2f} / seed sd {snr.seed_sd:.2f})")
        if rel is not None and rel.winner is not None:
            parts.append(f"winner {rel.winner} holds on a re-run with p {rel.winner_holds:.2f}, "
                         f"ranking {rel.ranking_holds:.2f}")
        shares = [s.share for s in g.variance.values() if s.share["seeds"] is not None]
        if shares:
            parts.append("uncertainty of a point from seeds/instances/tasks "
                         + "/".join(f"{np.mean([s[k] for s in shares]):.0%}" for k in ("seeds", "instances", "tasks")))
        if parts:
            lines.append(f"  {g.where}: " + "; ".join(parts))
    if section.method:
        lines.append(f"  (* significant at 0.05 after correction; {section.method})")
    return lines


def report_comparisons(sweep: SweepRecords, report: Report, read: Reader,
                       correction: str = "holm") -> Comparisons | None:
    """The report's `comparisons` section: along the matrix's row axis (every pair of rows within
    each column), the grouped bars' settings (every pair) or the curve's axis (adjacent points
    and each against the largest; categorical axes every pair), with per-instance scores from
    the cells' predictions. None for FLAN's bars (untuned vs tuned) and sweeps without a varying
    axis."""
    from ablate.analyse.report import varying_axes

    axes = varying_axes(sweep.cells)
    test_encodings = sweep.cells[0].cell.settings.test_encodings
    if report.matrix is not None:
        axis = "train_encoding" if "train_encoding" in axes else axes[0]
        encodings = test_encodings if axis == "train_encoding" else [test_encodings[0]]
    elif report.bars is not None and report.bars.metric is None:  # grouped per metric: its settings' axis
        axis, encodings = axes[0], [test_encodings[0]]
    elif report.curves is not None and report.curves.axis:
        axis, encodings = report.curves.axis, [report.curves.encoding]
    else:
        return None
    values = [r.cell.axis_values[axis] for r in sweep.cells]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or all(
        isinstance(v, list) for v in values) and axis == "train_clusters"
    return sweep_comparisons(sweep, axis, encodings, read, report.metric, numeric=numeric, correction=correction)


def significant_marks(report: Report) -> dict[tuple[str, str], int]:
    """(matrix row, column) -> how many other rows of its column it significantly beats."""
    marks: dict[tuple[str, str], int] = defaultdict(int)
    if report.matrix is None or report.comparisons is None:
        return {}
    for entry in report.comparisons.comparisons:
        if entry.significant:
            marks[entry.winner, _column_of(report, entry)] += 1
    return dict(marks)


def _column_of(report: Report, entry: Comparison) -> str:
    """The matrix column a comparison of two rows belongs to: its test encoding, or its group's value."""
    return entry.encoding if report.matrix.column_label == "testing encoding" else entry.group.split("=", 1)[-1]


class ColumnWinner(_Model):
    """A matrix column's best row, and whether it significantly beats every other row of the column."""
    row: str
    beats: int  # how many of the column's other rows it significantly beats
    of: int  # how many other rows the column has with a comparison

    @property
    def verdict(self) -> str:
        return "beats all*" if self.of and self.beats == self.of else f"beats {self.beats}/{self.of}"


def column_winners(report: Report) -> dict[str, ColumnWinner]:
    """The winner row of the heatmap: per column, the row with the highest mean (the lowest for a
    metric where lower is better) and how many other rows it beats after correction."""
    if report.matrix is None or report.comparisons is None or not report.comparisons.comparisons:
        return {}
    higher = results.metric_spec(report.metric).higher_is_better
    marks, found = significant_marks(report), {}
    for column in report.matrix.columns:
        scored = {r: report.matrix.cell(r, column).mean for r in report.matrix.rows if report.matrix.cell(r, column).n}
        if not scored:
            continue
        best = max(scored, key=lambda r: scored[r] if higher else -scored[r])
        compared = {e.a if e.b == best else e.b for e in report.comparisons.comparisons
                    if best in (e.a, e.b) and _column_of(report, e) == column}
        found[column] = ColumnWinner(row=best, beats=marks.get((best, column), 0), of=len(compared))
    return found


def adjacent_significant(report: Report) -> list[tuple[float, float]]:
    """(x, next x) of the curve's adjacent points whose comparison is significant (no other axes)."""
    section = report.comparisons
    if report.curves is None or section is None:
        return []
    xs = sorted({p.x for c in report.curves.lines.values() for p in c.points if p.n})
    found = []
    for entry in section.comparisons:
        if entry.group or not entry.significant:
            continue
        pair = sorted(_label_x(section.axis, label) for label in (entry.a, entry.b))
        if None not in pair and all(x in xs for x in pair) and xs.index(pair[1]) - xs.index(pair[0]) == 1:
            found.append((pair[0], pair[1]))
    return found


def _label_x(axis: str, label: str) -> float | None:
    if axis == "train_clusters":
        return float(len(label.split("+"))) if label else 0.0
    try:
        return float(label)
    except ValueError:
        return None
