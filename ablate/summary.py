"""What `ablate sweep` prints when its cells are done, and the report it writes then."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from ablate.errors import SHORT_ERROR_LENGTH, error_text
from ablate.prepare import REPORT_FOLDER, PreparedSweep
from ablate.results import headline_metric
from ablate.status import CellStatus


def write_report(prepared: PreparedSweep, out: TextIO) -> bool:
    """The sweep's report (figures in MLflow and ablate_runs/NAME/report); a failure here loses no
    result. Whether it was written."""
    from ablate.analyse.publish import print_report, publish_report
    from ablate.analyse.report import make_report

    try:
        report = make_report(prepared.tracking_uri, prepared.experiment, headline_metric(prepared.cells),
                             retry_seconds=prepared.spec.tracking.retry_seconds)
        written = publish_report(report, prepared.tracking_uri, prepared.output_dir / REPORT_FOLDER,
                                 retry_seconds=prepared.spec.tracking.retry_seconds)
    except Exception as exc:  # the cells are safe in MLflow; say how to retry the report alone
        print(f"Report not written ({error_text(exc, SHORT_ERROR_LENGTH)}); retry with: ablate report "
              f"{prepared.spec_file}", file=out)
        return False
    sys.stdout.flush()
    print_report(report)
    print("Figures: " + ", ".join(str(p) for p in written), file=out)
    return True



def print_summary(prepared: PreparedSweep, counts: dict[str, int], outcomes, seconds: float, out: TextIO) -> None:
    print(f"\nSweep '{prepared.spec.name}' finished in {seconds:.0f}s: {counts['done']} trained, "
          f"{counts['cached']} cached, {counts['failed']} failed, of {counts['total']} cells.", file=out)
    for outcome in outcomes:
        if outcome.status == CellStatus.DONE:
            scores = ", ".join(f"{k} {v:.1f}" for k, v in outcome.metrics.items())
            print(f"  done    {outcome.cell.name}: {scores}", file=out)
    for outcome in outcomes:
        if outcome.status == CellStatus.FAILED:
            print(f"  FAILED  {outcome.cell.name} ({outcome.cell.id}): {outcome.error}\n"
                  f"          log: {outcome.log_path}", file=out)
    if counts["failed"]:
        print("  Run the same command again to retry the failed cells (finished cells are not re-run).", file=out)
    per_node = Counter(o.node for o in outcomes if o.node)
    if len(per_node) > 1:
        print("Cells per node: " + ", ".join(f"{node}: {n}" for node, n in sorted(per_node.items())), file=out)
    print(f"Results: MLflow experiment '{prepared.experiment}' in {prepared.tracking_uri}; "
          f"plan and Ray logs in {prepared.output_dir}", file=out)
    ui = "ablate ui" if prepared.tracking_uri.endswith(str(Path.cwd() / "mlflow.db")) else \
        f"ablate ui --tracking-uri {prepared.tracking_uri}"
    print(f"Browse: {ui}", file=out)
