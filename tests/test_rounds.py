"""A sweep runs in rounds: each round's cells come from its proposer, which sees the cells
finished so far; every round is recorded in the plan; a re-run proposes the same cells and
trains nothing. Real Ray and a real MLflow store; the cells are heuristic baselines (seconds)."""

import json
from dataclasses import dataclass, field

import pytest
import yaml

from ablate.prepare import prepare_sweep
from ablate.propose import Proposal
from ablate.sweep import run_sweep

pytestmark = pytest.mark.slow

SPEC = {
    "name": "rounds", "data": {"source": "synthetic", "num_train_tasks": 2, "instances_per_task": 4},
    "model": "copy_demo",
    "train": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_source_length": 64, "max_target_length": 8,
              "encoding": "def+pos2"},
    "eval": {"instances_per_task": 3},
    "seeds": [0],
    "resources": {"max_concurrent": 1},
    "axes": {"model": ["copy_demo", "copy_input"]},
}


@dataclass
class TwoRounds:
    """Round 0: the first cell; round 1: the second, once the first's score is known."""

    cells: list
    name: str = "two-rounds"
    seen: list = field(default_factory=list)

    def propose(self, round_index, finished):
        self.seen.append({cid: dict(m) for cid, m in finished.items()})
        if round_index == 0:
            return Proposal([self.cells[0]], {self.cells[0].id: "initial design"})
        if round_index == 1:
            first = finished[self.cells[0].id]["rougeL"]
            return Proposal([self.cells[1]], {self.cells[1].id: f"first scored {first:.1f}"})
        return None


def test_a_sweep_runs_its_proposers_rounds_and_a_rerun_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rounds.yaml").write_text(yaml.safe_dump(SPEC))
    prepared = prepare_sweep("rounds.yaml", [], workdir=tmp_path)
    proposer = TwoRounds(prepared.cells)
    assert run_sweep(prepared, yes=True, proposer=proposer) == 0
    out = capsys.readouterr().out
    assert "round 2: 1 cells, 0 cached, 1 to run" in out
    # The second round was proposed knowing the first cell's result, read back from MLflow.
    assert proposer.seen[0] == {} and set(proposer.seen[1]) == {prepared.cells[0].id}
    plan = json.loads((tmp_path / "ablate_runs" / "rounds" / "plan.json").read_text())
    assert [(r["round"], r["cells"]) for r in plan["rounds"]] == [(0, [prepared.cells[0].id]), (1, [prepared.cells[1].id])]
    assert plan["rounds"][1]["reasons"][prepared.cells[1].id].startswith("first scored ")
    assert {c["id"] for c in plan["cells"]} == {c.id for c in prepared.cells}

    again = TwoRounds(prepare_sweep("rounds.yaml", [], workdir=tmp_path).cells)
    assert run_sweep(prepare_sweep("rounds.yaml", [], workdir=tmp_path), yes=True, proposer=again) == 0
    out = capsys.readouterr().out
    assert "round 2: 1 cells, 1 cached, 0 to run" in out and "0 trained, 2 cached" in out
    # The same finished cells with the same scores, so the same proposals (timings differ, not scores).
    assert {c: m["rougeL"] for c, m in again.seen[1].items()} == {c: m["rougeL"] for c, m in proposer.seen[2].items()}


def test_sweep_and_report_write_the_report_to_the_sweeps_own_folder(tmp_path, monkeypatch, capsys):
    """With tracking.experiment set, `ablate report` (given the spec or the experiment's name)
    writes where `ablate sweep` did: ablate_runs/<sweep name>/report, not .../<experiment>/report."""
    from ablate.cli import main

    monkeypatch.chdir(tmp_path)
    spec = {**SPEC, "name": "folders", "tracking": {"experiment": "an experiment of another name"}, "axes": {}}
    (tmp_path / "folders.yaml").write_text(yaml.safe_dump(spec))
    assert run_sweep(prepare_sweep("folders.yaml", [], workdir=tmp_path), yes=True) == 0
    report_dir = tmp_path / "ablate_runs" / "folders" / "report"
    written = report_dir / "report.json"
    assert written.is_file()
    written.unlink()
    assert main(["report", "folders.yaml"]) == 0
    assert written.is_file()
    written.unlink()
    assert main(["report", "an experiment of another name"]) == 0
    assert written.is_file()
    assert not (tmp_path / "ablate_runs" / "an experiment of another name").exists()
