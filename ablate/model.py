"""Models: presets built from config, pretrained HF models (encoder-decoder or decoder-only), LoRA
adapters, and heuristic baselines.

A model name in a spec is one of
- a preset built from config with random weights: T5-shaped (`t5-nano` ... `t5-base`) or
  Llama-shaped decoder-only models on the same size ladder (`llama-nano` ... `llama-small`);
- a heuristic baseline (`copy_demo`, `copy_input`), which predicts without training;
- `hf:<name>` or a local directory: a pretrained model and its tokenizer; whether it is
  encoder-decoder (seq2seq) or decoder-only (causal) is read from its config.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from ablate.errors import AblateError, did_you_mean, first_line

Kind = Literal["seq2seq", "causal"]


@dataclass(frozen=True)
class Preset:
    family: Literal["t5", "llama"]
    d_model: int
    d_ff: int
    num_layers: int  # T5: per stack (encoder and decoder); Llama: decoder layers
    num_heads: int
    d_kv: int
    # rough CPU seconds per step at batch 16 and ~40 tokens, measured on a 2-core machine; for cost estimates
    cpu_seconds_per_step: float

    @property
    def kind(self) -> Kind:
        return "seq2seq" if self.family == "t5" else "causal"


# Shaped after the T5 family (T5-small: d_model 512, 6+6 layers; T5-base: 768, 12+12), with three
# tiny members that train in minutes on a CPU. The Llama presets match the T5 ones in parameter
# count at each rung (within ~2%): twice the layers (one stack instead of two), SwiGLU widths to match.
PRESETS: dict[str, Preset] = {
    "t5-nano": Preset("t5", d_model=64, d_ff=256, num_layers=2, num_heads=2, d_kv=32, cpu_seconds_per_step=0.03),
    "t5-tiny": Preset("t5", d_model=128, d_ff=512, num_layers=3, num_heads=4, d_kv=32, cpu_seconds_per_step=0.06),
    "t5-mini": Preset("t5", d_model=256, d_ff=1024, num_layers=4, num_heads=4, d_kv=64, cpu_seconds_per_step=0.25),
    "t5-small": Preset("t5", d_model=512, d_ff=2048, num_layers=6, num_heads=8, d_kv=64, cpu_seconds_per_step=1.5),
    "t5-base": Preset("t5", d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64, cpu_seconds_per_step=6.0),
    "llama-nano": Preset("llama", d_model=64, d_ff=212, num_layers=4, num_heads=2, d_kv=32, cpu_seconds_per_step=0.03),
    "llama-tiny": Preset("llama", d_model=128, d_ff=424, num_layers=6, num_heads=4, d_kv=32, cpu_seconds_per_step=0.06),
    "llama-mini": Preset("llama", d_model=256, d_ff=856, num_layers=8, num_heads=4, d_kv=64, cpu_seconds_per_step=0.25),
    "llama-small": Preset("llama", d_model=512, d_ff=1712, num_layers=12, num_heads=8, d_kv=64,
                          cpu_seconds_per_step=1.5),
}
BASELINES = ("copy_demo", "copy_input")


def is_baseline(name: str) -> bool:
    return name in BASELINES


def check_model_name(name: str) -> None:
    """Raise ValueError (for spec validation) if `name` is neither a preset, a baseline, hf:... nor a model folder."""
    if name in PRESETS or name in BASELINES or name.startswith("hf:"):
        return
    if "/" in name or name.startswith("."):
        folder = Path(name)
        if not folder.is_dir():
            what = "is a file, not a model folder" if folder.exists() else "does not exist"
            raise ValueError(f"model directory '{name}' {what}; give a local model folder or hf:<name>")
        if not (folder / "config.json").is_file():
            raise ValueError(f"'{name}' is not a model folder (no config.json); give a folder written by "
                             "save_pretrained, or hf:<name>")
        return
    if Path(name).is_dir():
        raise ValueError(f"unknown model '{name}'; the folder '{name}' here is a model only when named as a "
                         f"path: write ./{name}")
    raise ValueError(f"unknown model '{name}'. {did_you_mean(name, list(PRESETS) + list(BASELINES))} "
                     "Pretrained models: hf:<name> or a local directory")


# What save_pretrained writes as a model's weights (one file, or the index of its shards): a folder
# with none of them has nothing for from_pretrained to load.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def missing_weights(name: str) -> str | None:
    """Why a local model folder cannot be loaded for its weights (it holds none), or None."""
    folder = Path(name)
    if name.startswith("hf:") or name in PRESETS or name in BASELINES or not folder.is_dir() \
            or any((folder / weights).is_file() for weights in WEIGHT_FILES):
        return None
    return (f"model folder '{name}' holds no weights (none of {', '.join(WEIGHT_FILES)}); give a folder written by "
            "save_pretrained (its config, weights and tokenizer)")


def pretrained_path(name: str) -> str:
    return name.removeprefix("hf:")


def _pretrained_config(name: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(pretrained_path(name))
    except (OSError, ValueError) as exc:
        raise AblateError(f"cannot load the config of model '{name}' ({first_line(exc)}).",
                          field="model", fix="give a folder written by save_pretrained, or a hub name on a "
                                             "machine with network access.") from None


def model_kind(name: str) -> Kind:
    """Encoder-decoder ("seq2seq") or decoder-only ("causal"), from the preset or the model's config."""
    if name in PRESETS:
        return PRESETS[name].kind
    return "seq2seq" if getattr(_pretrained_config(name), "is_encoder_decoder", False) else "causal"


def _preset_config(preset: Preset, vocab_size: int):
    from transformers import LlamaConfig, T5Config

    if preset.family == "t5":
        return T5Config(
            vocab_size=vocab_size, d_model=preset.d_model, d_ff=preset.d_ff, d_kv=preset.d_kv,
            num_layers=preset.num_layers, num_decoder_layers=preset.num_layers, num_heads=preset.num_heads,
            dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
    # Word-level presets have no BOS token; </s> (id 1) separates source and target and ends the target.
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=preset.d_model, intermediate_size=preset.d_ff,
        num_hidden_layers=preset.num_layers, num_attention_heads=preset.num_heads, head_dim=preset.d_kv,
        num_key_value_heads=preset.num_heads, max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=0, bos_token_id=1, eos_token_id=1, attention_dropout=0.0,
    )


def build_model(name: str, vocab_size: int, seed: int):
    """A preset built from its config (seeded init) or a pretrained model of either kind.

    The global torch generator is seeded here for every model, not only presets: what draws from it
    next (a LoRA adapter's init, a pretrained model's dropout masks in training) must not depend on
    which cells a reused worker ran before this one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    torch.manual_seed(seed)  # every device's generator
    if name in PRESETS:
        config = _preset_config(PRESETS[name], vocab_size)
        auto = AutoModelForSeq2SeqLM if PRESETS[name].kind == "seq2seq" else AutoModelForCausalLM
        return auto.from_config(config)
    auto = AutoModelForSeq2SeqLM if model_kind(name) == "seq2seq" else AutoModelForCausalLM
    return auto.from_pretrained(pretrained_path(name))


@lru_cache(maxsize=32)
def module_names(name: str, vocab_size: int = 64) -> frozenset[str]:
    """The last name part of every module of a model (what LoRA's target_modules match), built on
    the meta device so no weights are allocated or loaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if name in PRESETS:
        config = _preset_config(PRESETS[name], vocab_size)
        auto = AutoModelForSeq2SeqLM if PRESETS[name].kind == "seq2seq" else AutoModelForCausalLM
    else:
        config = _pretrained_config(name)
        auto = AutoModelForSeq2SeqLM if model_kind(name) == "seq2seq" else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config)
    return frozenset(module_name.rsplit(".", 1)[-1] for module_name, _ in model.named_modules() if module_name)


def add_lora(model, lora):
    """Wrap `model` with LoRA adapters (peft); only the adapters are trainable afterwards."""
    from peft import LoraConfig, TaskType, get_peft_model

    task_type = TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.CAUSAL_LM
    config = LoraConfig(task_type=task_type, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules)
    return get_peft_model(model, config)


def load_pretrained_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(pretrained_path(name))
    # transformers says a missing or unreadable tokenizer with OSError, ValueError ("Couldn't
    # instantiate the backend tokenizer": a folder without tokenizer files), KeyError or TypeError
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fix = ("use a local model folder, or a hub name on a machine with network access." if name.startswith("hf:")
               else "save the tokenizer into the model folder (tokenizer.save_pretrained(folder) writes "
                    "tokenizer.json and tokenizer_config.json).")
        folder = Path(pretrained_path(name))
        reason = first_line(exc)
        if folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
            reason = f"the folder holds none of {', '.join(TOKENIZER_FILES)}"
        raise AblateError(f"cannot load the tokenizer of '{name}' ({reason}).", field="model", fix=fix) from None


# Files a saved tokenizer is read from (a fast tokenizer's, or a slow one's vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "spiece.model", "vocab.json",
                   "vocab.txt")
