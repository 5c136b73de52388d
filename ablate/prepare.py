"""Checks before anything starts: a spec loaded, expanded and checked into a `PreparedSweep`.

`prepare_sweep` raises one AblateError listing every problem and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ablate.data.sources import check_source, source_fingerprint
from ablate.errors import AblateError, problem_list
from ablate.files import check_output_folder
from ablate.plan import Cell, checked_grid
from ablate.spec import SweepSpec, load_spec
from ablate.validate import check_cells, device_errors, local_cpu_count, local_gpu_count


@dataclass(frozen=True)
class PreparedSweep:
    spec: SweepSpec
    spec_file: str
    cells: list[Cell]
    tracking_uri: str
    experiment: str
    output_dir: Path
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the task selection removed (ablate.validate.selection_note)

    @property
    def storage_path(self) -> str:
        """Where Tune keeps the trial folders and checkpoints: the spec's, or a folder on this machine."""
        return self.spec.resources.storage_path or str(self.output_dir.resolve() / "ray")

    def print_warnings(self, out: TextIO) -> None:
        for warning in self.warnings:
            print(f"Warning: {warning}", file=out)


def prepare_sweep(spec_file: str, overrides: list[str], *, tracking_uri: str | None = None,
                  output_dir: str | None = None, workdir: Path | None = None,
                  address: str | None = None) -> PreparedSweep:
    """Load, expand and check a spec; raises one AblateError listing every problem. Writes nothing.
    Without a cluster `address`, GPU requests are checked against this machine."""
    from ablate.track.uri import check_store_kind, resolve_tracking_uri

    workdir = workdir or Path.cwd()
    spec = load_spec(spec_file, overrides, workdir)
    try:
        check_source(spec.data.source)
    except AblateError as exc:
        raise AblateError(f"'{spec.data.source}': {exc.message}", file=spec_file, field="data.source",
                          fix=exc.fix) from None
    fingerprint = source_fingerprint(spec.data.source, spec.data.synthetic_seed)
    cells, errors = checked_grid(spec, fingerprint)
    if errors:
        raise _problems(spec_file, errors)
    cells = list({c.id: c for c in cells}.values())  # equal settings run once
    out = output_dir_of(spec, workdir, output_dir)
    check_output_folder(out, "--out" if output_dir else "name")
    checks = check_cells(cells, out / "cache")
    gpus = spec.resources.gpus_per_cell
    for error in device_errors(cells, gpus, None if address or gpus == 0 else local_gpu_count(),
                               spec.resources.cpus_per_cell, None if address else local_cpu_count()):
        checks.error(error)
    if checks.errors:
        raise _problems(spec_file, checks.errors)
    uri = resolve_tracking_uri(tracking_uri or spec.tracking.tracking_uri, workdir)
    check_store_kind(uri)  # the kind of store, without touching it: `validate` refuses what a sweep would
    return PreparedSweep(spec, spec_file, cells, uri, spec.tracking.experiment or spec.name, out,
                         tuple(checks.warnings), tuple(checks.notes))


def _problems(spec_file: str, errors: list[str]) -> AblateError:
    return problem_list(errors, what="with the planned cells", file=spec_file,
                        fix="correct the spec (or --set) as each line says; `ablate validate SPEC` re-checks it.")


REPORT_FOLDER = "report"  # in the output folder


def output_dir_of(spec: SweepSpec, workdir: Path, output_dir: str | None = None) -> Path:
    """The sweep's output folder (plan, caches, Ray's folders, the report): `--out`, else
    ablate_runs/<sweep name>. `ablate sweep` and `ablate report` both write the report there."""
    return Path(output_dir) if output_dir else workdir / "ablate_runs" / spec.name
