"""Cell identity: the ids of every shipped spec's cells are those earlier versions stored (MLflow
caches results by them), and every setting that changes a result is part of the id."""

import json
from pathlib import Path

import pytest

from ablate.data.sources import source_fingerprint
from ablate.plan import expand_grid
from ablate.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
PINNED = json.loads((ROOT / "tests" / "fixtures" / "pinned_cell_ids.json").read_text())


@pytest.mark.parametrize("spec_file", sorted(PINNED))
def test_shipped_cell_ids_are_unchanged(spec_file):
    spec = load_spec(ROOT / "sweeps" / spec_file, [], workdir=ROOT)
    fingerprint = source_fingerprint(spec.data.source, spec.data.synthetic_seed)
    assert fingerprint == PINNED[spec_file]["fingerprint"]
    assert {c.name: c.id for c in expand_grid(spec, fingerprint)} == PINNED[spec_file]["cells"]


def test_every_shipped_spec_is_pinned():
    assert sorted(p.name for p in (ROOT / "sweeps").glob("*.yaml")) == sorted(PINNED)
