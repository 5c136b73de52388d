"""The report's types: every number behind a sweep's figures, typed from `build_report` to the
figures, the MLflow description, the dashboard and report.json (which is `Report.to_json()`).

A report draws one figure: `curves` (a line per cluster and the mean along the swept axis),
`matrix` (training x testing encoding, or two categorical axes) or `bars` (FLAN Fig. 3: untuned
vs tuned per held-out cluster, or grouped settings per metric). The paired comparisons of its
settings (`comparisons`) come from compare_sweep.py.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from ablate.analyse.compare import PairedResult
from ablate.analyse.stats import PointStats


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Point(_Model):
    """One point (of a curve, a matrix cell or a bar): mean and 95% t-interval over seeds, the
    values behind them, and the cells that should have been there and are not."""
    x: float | None = 0.0  # None: not placeable (a model whose parameter count is unknown)
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    values: list[float]
    label: str = ""
    cells: list[str] = []  # the ids of the finished cells behind `values` (curves), in the same order
    failed: list[str] = []
    missing: list[str] = []

    @classmethod
    def of(cls, stats: PointStats, label: str = "", cells: list[str] = (), failed: list[str] = (),
           missing: list[str] = ()) -> "Point":
        return cls(x=stats.x, n=stats.n, mean=stats.mean, ci_low=stats.ci_low, ci_high=stats.ci_high,
                   values=list(stats.values), label=label, cells=list(cells), failed=list(failed),
                   missing=list(missing))

    @property
    def has_interval(self) -> bool:
        """One seed gives a mean and no interval."""
        return self.n > 1

    @property
    def error_below(self) -> float:
        return self.mean - self.ci_low if self.has_interval else 0.0

    @property
    def error_above(self) -> float:
        return self.ci_high - self.mean if self.has_interval else 0.0

    def text(self, compact: bool = False) -> str:
        """"41.2 [33.0, 49.4]", or compact "41.2±8.2(n=3)"."""
        if not self.n:
            return "missing"
        if self.n == 1:
            return f"{self.mean:.1f}{'' if compact else ' '}(n=1, no interval)"
        if compact:
            return f"{self.mean:.1f}±{self.ci_high - self.mean:.1f}(n={self.n})"
        return f"{self.mean:.1f} [{self.ci_low:.1f}, {self.ci_high:.1f}]"


class Spearman(_Model):
    rho: float
    n: int
    p: float
    exact: bool

    def text(self) -> str:
        p = f"p={self.p:.2g}" + ("" if self.exact else " (Monte-Carlo)")
        return f"Spearman {self.rho:.2f} (n={self.n}, {p})"


class Fit(_Model):
    """A fitted curve model (ablate.analyse.stats.Fit) as the report holds it."""
    model: str  # "flat" | "trend" | "saturating"
    params: dict[str, float | None]
    aicc: float | None  # None: undefined (too few points for the model's parameters)
    rss: float | None
    at_bound: bool = False


class Curve(_Model):
    """One line's points with the fits, the outcome, the knee and the trend of
    ablate.analyse.stats.curve_summary (count axes; other axes have points only)."""
    points: list[Point]
    scale: str | None = None
    outcome: str | None = None
    fit: Fit | None = None
    fits: list[Fit] = []
    knee: float | None = None
    knee_ci: tuple[float, float | None] | None = None
    knee_support: float | None = None
    knee_inside_range: bool = False
    plateau: float | None = None
    spearman: Spearman | None = None
    untuned: Point | None = None  # the untuned starting point, drawn apart (not in the fits)

    @property
    def present(self) -> list[Point]:
        return [p for p in self.points if p.n > 0]

    @property
    def knee_in_range(self) -> float | None:
        return self.knee if self.knee is not None and self.knee_inside_range else None

    def knee_text(self) -> str | None:
        """"56 [37, 81], support 0.93" (or "[37, no upper end)"), with "beyond the range" when so."""
        if self.knee is None:
            return None
        low, high = self.knee_ci
        interval = f"[{low:.3g}, {high:.3g}]" if high is not None else f"[{low:.3g}, no upper end)"
        where = "" if self.knee_inside_range else " (beyond the measured range: no plateau reached)"
        return f"{self.knee:.3g} {interval}, support {self.knee_support:.2f}{where}"


class Curves(_Model):
    """The curve figure: one line per cluster and the mean (or the mean per value of a second axis)."""
    axis: str | None
    x_label: str
    encoding: str
    x_is_count: bool
    log_x: bool
    lines: dict[str, Curve]

    def labels(self) -> dict[float, str]:
        """Each measured x's tick label ("27", "t5-mini (7.4M)")."""
        return {p.x: p.label for c in self.lines.values() for p in c.points if p.x is not None and math.isfinite(p.x)}


class Matrix(_Model):
    """A grid of the mean line: training x testing encoding, or two axes (e.g. model x train.lora)."""
    rows: list[str]
    columns: list[str]
    cells: dict[str, dict[str, Point]]
    row_label: str
    column_label: str

    def cell(self, row: str, column: str) -> Point:
        return self.cells[row][column]


class Bars(_Model):
    """Grouped bars: per group (a held-out cluster, or a metric), one bar per series (a setting)."""
    groups: list[str]
    series: dict[str, dict[str, Point]]
    group_label: str = "held-out cluster"
    metric: str | None = None  # the metric of every bar; None: each group is a metric of its own


class NotDone(_Model):
    name: str
    id: str
    status: str  # "failed" | "missing"
    error: str | None


class CellCounts(_Model):
    total: int
    done: int
    failed: int
    missing: int
    not_done: list[NotDone]


class RoundOf(_Model):
    round: int
    reason: str | None


class Comparison(PairedResult):
    """One paired comparison A - B within a group of the other axes and a test encoding,
    corrected with the sweep's other comparisons."""
    group: str
    encoding: str
    a: str
    b: str
    p_adjusted: float
    correction: str
    significant: bool
    winner: str | None

    @property
    def parts(self) -> tuple[str, ...]:
        """The group, the test encoding (either may be empty) and "A vs B"."""
        return (self.group, self.encoding, f"{self.a} vs {self.b}")

    @property
    def name(self) -> str:
        return " | ".join(x for x in self.parts if x)


class VarianceShares(_Model):
    """Where a setting's mean score is uncertain: seeds, test instances and task sampling."""
    variance_of_mean: dict[str, float | None]
    share: dict[str, float | None]
    seed_sd: float | None
    n_seeds: int
    n_instances: int
    n_tasks: int
    method: str


class SignalToNoise(_Model):
    snr: float | None  # None or NaN: undefined (one seed, or no spread to measure)
    spread: float | None
    seed_sd: float | None
    df: float | None

    @property
    def known(self) -> bool:
        return self.snr is not None and math.isfinite(self.snr)


class Reliability(_Model):
    """The probability that the winner and the ranking hold on a re-run."""
    winner: str | None
    winner_holds: float | None
    ranking_holds: float | None
    signal_sd: float | None = None
    noise_sd: float | None = None
    df: float | None = None
    method: str


class ComparisonGroup(_Model):
    group: str
    encoding: str
    variance: dict[str, VarianceShares]
    skipped: list[str]
    signal_to_noise: SignalToNoise | None
    reliability: Reliability | None

    @property
    def where(self) -> str:
        return " ".join(x for x in (self.group, f"[{self.encoding}]") if x)


class Comparisons(_Model):
    axis: str
    metric: str
    correction: str
    comparisons: list[Comparison]
    groups: list[ComparisonGroup]
    scores: str
    method: str | None


class Report(_Model):
    """Every number behind a sweep's figures."""
    experiment: str
    experiment_id: str
    metric: str
    sweep: str
    parent_run_id: str | None
    cells: CellCounts
    aggregate: str
    baselines: dict[str, dict[str, float]]  # baseline -> line (mean, clusters) -> score
    rounds: dict[str, RoundOf] | None = None  # cell id -> the round that first proposed it, and why
    curves: Curves | None = None
    matrix: Matrix | None = None
    bars: Bars | None = None
    comparisons: Comparisons | None = None
    comparisons_error: str | None = None  # why there are no comparisons (a damaged predictions artifact)

    def rounds_of(self, point: Point) -> list[int]:
        """The rounds of a refined sweep that added the cells behind a point (empty: one round)."""
        if not self.rounds or len({r.round for r in self.rounds.values()}) < 2:
            return []
        return sorted({self.rounds[c].round for c in point.cells if c in self.rounds})

    def baseline_means(self) -> dict[str, float]:
        """Each baseline's mean line."""
        from ablate.analyse.report import MEAN_LINE

        return {name: scores[MEAN_LINE] for name, scores in self.baselines.items() if MEAN_LINE in scores}

    def to_json(self) -> dict[str, Any]:
        """report.json: the report as strict JSON values (None, NaN and infinities as null, which
        read back as None: the fields that can be undefined are optional)."""
        import json

        return json.loads(self.model_dump_json())
