"""Training stages, found by name (the `kind` of an entry of the spec's `stages`).

    sft   supervised fine-tuning on the instruction mixture (the default; settings: `train`)
    dpo   direct preference optimisation (TRL) on preference pairs, after sft (decoder-only models)
    reward_model   a reward model (TRL's RewardTrainer) on preference pairs, for rloo (decoder-only)
    rloo  reinforcement learning (TRL's RLOOTrainer) against the reward model before it (decoder-only)

Each stage's module holds its settings and its `run` function (the contract is
`ablate/stages/base.py`); this registry is the one list of them.
"""

from __future__ import annotations

from ablate.stages import dpo, reward_model, rloo, sft
from ablate.stages.base import Stage
from ablate.typed import tagged_union

STAGES: dict[str, Stage] = {s.kind: s for s in (Stage("sft", sft.SftConfig, sft.run),
                                                Stage("dpo", dpo.DpoConfig, dpo.run, dpo.check),
                                                Stage("reward_model", reward_model.RewardModelConfig,
                                                      reward_model.run, reward_model.check),
                                                Stage("rloo", rloo.RlooConfig, rloo.run, rloo.check))}


def stage_of(kind: str) -> Stage:
    return STAGES[kind]


StageConfig = tagged_union(tuple(s.config for s in STAGES.values()), "stage")
