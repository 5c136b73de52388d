"""Training stages, found by name (the `kind` of an entry of the spec's `stages`).

    sft   supervised fine-tuning on the instruction mixture (the default; settings: `train`)
    dpo   direct preference optimisation (TRL) on preference pairs, after sft (decoder-only models)

Each stage's module holds its settings and its `run` function (the contract is
`ablate/stages/base.py`); this registry is the one list of them.
"""

from __future__ import annotations

from typing import Any

from ablate.stages import dpo, sft
from ablate.stages.base import Stage
from ablate.typed import tagged_union

STAGES: dict[str, Stage] = {s.kind: s for s in (Stage("sft", sft.SftConfig, sft.run),
                                                Stage("dpo", dpo.DpoConfig, dpo.run, dpo.check))}


def stage_of(kind: str) -> Stage:
    return STAGES[kind]


def _by_kind(value: Any) -> Any:
    """`sft` as shorthand for `{kind: sft}`; an unknown kind named with the known ones."""
    from ablate.errors import did_you_mean

    entry = {"kind": value} if isinstance(value, str) else value
    if isinstance(entry, dict) and entry.get("kind") not in STAGES:
        raise ValueError(f"unknown stage '{entry.get('kind')}'. {did_you_mean(str(entry.get('kind')), list(STAGES))}")
    return entry


StageConfig = tagged_union(tuple(s.config for s in STAGES.values()), _by_kind)
