"""Starting specs for `ablate init`: one record per ablation a researcher asks about, rendered as
a commented YAML spec for a data source (the built-in suite, a SuperNI clone or an `hf:` dataset).

    ablate init --ablation num_tasks --source synthetic --out my_sweep.yaml
    ablate init --ablation clusters --source /data/natural-instructions --out clusters.yaml

Each record holds only what its ablation varies (its axes and the settings they need); the rest
comes from one of two bases: the built-in suite's tiny settings (minutes on a laptop CPU, the
shipped sweeps' own) or the papers' settings for real data (Tk-Instruct's T5 on 1,024-token
sources). Every field written gets its description from the typed spec as the comment above it,
so the starter explains itself and cannot drift from the spec. tests/test_starters.py checks that
each starter validates and that its axes are those of the shipped sweep it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

SYNTHETIC = "synthetic"

# The built-in suite's settings (those of sweeps/*.yaml): a 1M-parameter T5 learns the suite's
# operations in a few hundred steps on a CPU.
_TINY = {
    "model": "t5-tiny",
    "train": {"steps": 600, "batch_size": 32, "learning_rate": 1.0e-3, "max_source_length": 64,
              "max_target_length": 16, "encoding": "def"},
    "eval": {"instances_per_task": 50, "max_new_tokens": 8},
    "seeds": [0, 1, 2],
}
# Real SuperNI-shaped data: Tk-Instruct's settings (T5 LM-adapted, constant 5e-5, 1,024 source
# tokens, definition + 2 positive examples), scored on the official 100 instances per test task.
_PAPER = {
    "model": "hf:google/t5-base-lm-adapt",
    "train": {"steps": 5000, "batch_size": 16, "learning_rate": 5.0e-5, "schedule": "constant",
              "max_source_length": 1024, "max_target_length": 128, "encoding": "def+pos2"},
    "eval": {"instances_per_task": 100, "max_new_tokens": 128},
    "seeds": [0, 1, 2],
    "resources": {"gpus_per_cell": 1},
}
_HELD_OUT = ["nli", "commonsense", "closed_book_qa"]


@dataclass(frozen=True)
class Starter:
    """One ablation: the question it answers, the shipped sweep that answers it on the built-in
    suite, and the spec fields it sets over the base (axes included)."""

    question: str
    sweep: str  # sweeps/<sweep>.yaml
    fields: dict[str, Any]
    tiny: dict[str, Any] = field(default_factory=dict)  # on the built-in suite only (e.g. a shorter training)


STARTERS: dict[str, Starter] = {
    "clusters": Starter(
        "How does held-out performance grow with the number of instruction-tuning task clusters? (FLAN Fig. 4)",
        "clusters",
        {"data": {"held_out_clusters": _HELD_OUT, "instances_per_task": 64},
         "axes": {"train_clusters": {"cumulative": ["program_execution", "extraction", "summarization",
                                                    "reading_comprehension", "sentiment"]}}},
        {"train": {"steps": 800}}),
    "num_tasks": Starter(
        "How does held-out performance grow with the number of training tasks? (SuperNI Fig. 5)",
        "num_tasks",
        {"data": {"instances_per_task": 64}, "axes": {"num_train_tasks": [1, 2, 4, 8, 16, 27]}}),
    "instances_per_task": Starter(
        "How does held-out performance grow with the instances per training task, and where does it saturate? "
        "(SuperNI Fig. 5)",
        "examples_per_task",
        {"data": {"instances_per_task": 64},
         "axes": {"instances_per_task": [1, 2, 4, 8, 16, 32, 64, 128, 256]}}),
    "model_size": Starter(
        "Does a larger model gain more from instruction tuning? (SuperNI Fig. 5, FLAN Fig. 7)",
        "model_size",
        {"data": {"instances_per_task": 64}, "axes": {"model": ["t5-nano", "t5-tiny", "t5-mini"]}},
        {"train": {"learning_rate": 5.0e-4, "warmup_steps": 60}}),
    "encodings": Starter(
        "Which instruction encoding should a model be trained and tested with? (SuperNI Table 4)",
        "encodings",
        {"train": {"encoding": "def+pos2", "max_source_length": 128},
         "data": {"instances_per_task": 64},
         "axes": {"train_encoding": ["task_id", "def", "pos2", "def+pos2", "def+pos2+neg2", "def+pos2+neg2+expl",
                                     "pos4", "def+pos4"],
                  "test_encoding": ["task_id", "def", "pos2", "def+pos2", "def+pos2+neg2", "def+pos2+neg2+expl",
                                    "pos4", "def+pos4"]}},
        {"train": {"steps": 300}, "eval": {"instances_per_task": 20}}),
    "architecture": Starter(
        "Encoder-decoder or decoder-only, full fine-tuning or LoRA?",
        "architecture",
        {"data": {"held_out_clusters": _HELD_OUT, "instances_per_task": 64},
         "axes": {"model": ["t5-tiny", "llama-tiny"], "train.lora": [None, {"r": 16, "alpha": 32}]}}),
    "zero_vs_few_shot": Starter(
        "Does instruction tuning help zero-shot and few-shot prompting alike? (FLAN Fig. 9)",
        "zero_vs_few_shot",
        {"data": {"held_out_clusters": _HELD_OUT, "instances_per_task": 64},
         "eval": {"encodings": ["def", "def+pos2"]},
         "axes": {"train.steps": [0, 800]}},
        {"train": {"steps": 800, "max_source_length": 96}}),
    "flan_protocol": Starter(
        "FLAN's protocol: one model per held-out cluster, scored by rank classification (FLAN Fig. 5)",
        "flan_protocol",
        {"data": {"clusters": "flan", "instances_per_task": 64},
         "train": {"options_in_prompt": True},
         "eval": {"encodings": ["def", "def+pos2"], "options_in_prompt": True, "evaluators": ["rank", "generate"]},
         "seeds": [0, 1],
         "axes": {"held_out_cluster": {"leave_one_out": "flan", "exclude_together": "flan"},
                  "train.steps": [0, 800]}},
        {"train": {"steps": 800, "max_source_length": 128}}),
    "preference": Starter(
        "Does a preference stage (DPO) after supervised fine-tuning help? (InstructGPT)",
        "preference",
        {"model": "llama-tiny",
         "data": {"num_train_tasks": 12, "instances_per_task": 32},
         "eval": {"evaluators": ["generate", "preference", "abstention"]},
         "axes": {"stages": [["sft"],
                             ["sft", {"kind": "dpo", "steps": 16, "batch_size": 8, "pairs": 128, "beta": 0.1,
                                      "learning_rate": 5.0e-4}]]}},
        {"train": {"steps": 60, "batch_size": 16, "learning_rate": 2.0e-3, "max_target_length": 8},
         "eval": {"instances_per_task": 6, "max_new_tokens": 6}}),
}


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            and key != "axes" else value
    return merged


def starter_spec(ablation: str, source: str, name: str | None = None) -> dict[str, Any]:
    """The raw spec (a YAML mapping) of a starter on a data source."""
    starter = STARTERS[ablation]
    tiny = source == SYNTHETIC
    base = _TINY if tiny else _PAPER
    spec = _merge(base, starter.fields)
    if tiny:
        spec = _merge(spec, starter.tiny)
    elif "llama" in str(spec.get("model")):  # decoder-only ablations: a small pretrained decoder
        spec["model"] = "hf:HuggingFaceTB/SmolLM2-135M"
    spec["data"] = {"source": source, **spec.get("data", {})}
    ordered = {"name": name or ablation}
    for key in ("data", "model", "train", "stages", "eval", "seeds", "resources", "tracking", "axes"):
        if key in spec:
            ordered[key] = spec[key]
    return ordered


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip().removesuffix("...").strip()


def _described(model: Any, key: str) -> str | None:
    info = getattr(model, "model_fields", {}).get(key) if model is not None else None
    return info.description if info is not None else None


def render_starter(ablation: str, source: str, schema_path: str, name: str | None = None) -> str:
    """The starter as commented YAML: the modeline, what it answers and how to run it, then each
    field with its description from the typed spec above it."""
    from ablate.schema import modeline
    from ablate.spec import SweepSpec, _submodel

    starter = STARTERS[ablation]
    spec = starter_spec(ablation, source, name)
    lines = [modeline(schema_path),
             f"# {starter.question}",
             f"# Written by `ablate init --ablation {ablation}`; the built-in suite's version is sweeps/{starter.sweep}.yaml.",
             "# Check it with `ablate validate FILE`, see its cells and cost with `ablate plan FILE`, run it with",
             "# `ablate sweep FILE`. Every field: `ablate schema`, or the docs' reference/spec page.",
             ""]
    for key, value in spec.items():
        description = _described(SweepSpec, key)
        if description:
            lines.append(f"# {description}")
        inner = _submodel(SweepSpec.model_fields[key].annotation)
        if isinstance(value, dict) and (inner is not None or key == "axes"):
            lines.append(f"{key}:")
            for sub, subvalue in value.items():
                sub_description = _described(inner, sub)
                if sub_description:
                    lines.append(f"  # {sub_description}")
                lines.append(f"  {_key(sub)}: {_flow(subvalue)}")
        else:
            lines.append(f"{key}: {_flow(value)}")
        lines.append("")
    return "\n".join(lines)


def _key(key: str) -> str:
    return _flow(key) if not key.replace("_", "").replace(".", "").isalnum() else key
