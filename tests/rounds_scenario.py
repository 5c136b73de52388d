"""A two-round sweep with a custom proposer, run in its own process (as a user's driver is: the
local Ray runtime belongs to this process, not to the test runner). Prints, as the last line of
its output, JSON with what the proposer saw before each round.

    python tests/rounds_scenario.py SPEC_FILE WORKDIR
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ablate.prepare import prepare_sweep
from ablate.propose import Proposal
from ablate.sweep import run_sweep


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


def main(spec_file: str, workdir: str) -> int:
    prepared = prepare_sweep(spec_file, [], workdir=Path(workdir))
    proposer = TwoRounds(prepared.cells)
    code = run_sweep(prepared, yes=True, proposer=proposer)
    print(json.dumps({"code": code, "cells": [c.id for c in prepared.cells], "seen": proposer.seen}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
