"""Models: T5-shaped presets built from config, pretrained HF models, and heuristic baselines.

A model name in a spec is one of
- a preset (`t5-nano`, `t5-tiny`, `t5-mini`, `t5-small`, `t5-base`), built from config with random weights;
- a heuristic baseline (`copy_demo`, `copy_input`), which predicts without training;
- `hf:<name>` or a local directory: a pretrained seq2seq model and its tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ablate.errors import AblateError, did_you_mean


@dataclass(frozen=True)
class Preset:
    d_model: int
    d_ff: int
    num_layers: int
    num_heads: int
    d_kv: int
    # rough CPU seconds per step at batch 16 and ~40 tokens, measured on a 2-core machine; for cost estimates
    cpu_seconds_per_step: float


# Shaped after the T5 family (T5-small: d_model 512, 6+6 layers; T5-base: 768, 12+12),
# with three tiny members that train in minutes on a CPU.
PRESETS: dict[str, Preset] = {
    "t5-nano": Preset(d_model=64, d_ff=256, num_layers=2, num_heads=2, d_kv=32, cpu_seconds_per_step=0.03),
    "t5-tiny": Preset(d_model=128, d_ff=512, num_layers=3, num_heads=4, d_kv=32, cpu_seconds_per_step=0.06),
    "t5-mini": Preset(d_model=256, d_ff=1024, num_layers=4, num_heads=4, d_kv=64, cpu_seconds_per_step=0.25),
    "t5-small": Preset(d_model=512, d_ff=2048, num_layers=6, num_heads=8, d_kv=64, cpu_seconds_per_step=1.5),
    "t5-base": Preset(d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64, cpu_seconds_per_step=6.0),
}
BASELINES = ("copy_demo", "copy_input")


def is_baseline(name: str) -> bool:
    return name in BASELINES


def check_model_name(name: str) -> None:
    """Raise ValueError (for spec validation) if `name` is neither a preset, a baseline, hf:... nor a path."""
    if name in PRESETS or name in BASELINES or name.startswith("hf:"):
        return
    if "/" in name or name.startswith("."):
        if Path(name).is_dir():
            return
        raise ValueError(f"model directory '{name}' does not exist; give a local model folder or hf:<name>")
    raise ValueError(f"unknown model '{name}'. {did_you_mean(name, list(PRESETS) + list(BASELINES))} "
                     "Pretrained models: hf:<name> or a local directory")


def build_model(name: str, vocab_size: int, seed: int):
    """A seq2seq model: a preset built from config (seeded init) or a pretrained one."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

    if name in PRESETS:
        preset = PRESETS[name]
        config = T5Config(
            vocab_size=vocab_size, d_model=preset.d_model, d_ff=preset.d_ff, d_kv=preset.d_kv,
            num_layers=preset.num_layers, num_decoder_layers=preset.num_layers, num_heads=preset.num_heads,
            dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
        torch.manual_seed(seed)
        return T5ForConditionalGeneration(config)
    return AutoModelForSeq2SeqLM.from_pretrained(pretrained_path(name))


def pretrained_path(name: str) -> str:
    return name.removeprefix("hf:")


def load_pretrained_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(pretrained_path(name))
    except OSError as exc:
        raise AblateError(f"cannot load the tokenizer of '{name}' ({exc}).", field="model",
                          fix="use a local model folder, or a hub name on a machine with network access.") from None
