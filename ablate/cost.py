"""How long a training step of a model takes on this machine's CPU, for a sweep's cost estimate.

Presets carry a measured time per step (ablate.model.PRESETS). A pretrained model (a local folder,
or an `hf:` model in the local hub cache) is placed among them by the parameter count its
`config.json` gives (without the embeddings, whose size follows the tokenizer: the presets'
word-level tokenizers are task-built and small): the time is interpolated between the two presets nearest in size, on log
scales (time grows about linearly with parameters), and extrapolated from the end ones beyond.
Without a readable config the estimate falls back to UNKNOWN_SECONDS_PER_STEP.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

from ablate.model import PRESETS, Preset

UNKNOWN_SECONDS_PER_STEP = 5.0  # a model whose size cannot be read: about a t5-base


def config_parameters(config: dict) -> float | None:
    """An estimate of a model's parameter count without embeddings, from its HF config (T5, Llama,
    GPT-2, BART and similar keys): the attention and feed-forward weights of every layer."""
    width = config.get("d_model") or config.get("hidden_size") or config.get("n_embd")
    layers = config.get("num_layers") or config.get("num_hidden_layers") or config.get("n_layer") \
        or config.get("encoder_layers")
    if not width or not layers:
        return None
    feed_forward = config.get("d_ff") or config.get("intermediate_size") or config.get("n_inner") \
        or config.get("encoder_ffn_dim") or 4 * width
    heads = config.get("num_heads") or config.get("num_attention_heads") or config.get("n_head") or 1
    attention = heads * config["d_kv"] if config.get("d_kv") else width
    gated = "llama" in str(config.get("model_type", "")) or "gated" in str(config.get("feed_forward_proj", "")) \
        or config.get("hidden_act") == "silu"
    per_layer = 4 * width * attention + (3 if gated else 2) * width * feed_forward
    decoder_layers = 0
    if config.get("is_encoder_decoder"):
        decoder_layers = config.get("num_decoder_layers") or config.get("decoder_layers") or layers
    total = layers * per_layer + decoder_layers * (per_layer + 4 * width * attention)
    return float(total)


def preset_parameters(preset: Preset) -> float:
    config = {"d_model": preset.d_model, "d_ff": preset.d_ff, "num_layers": preset.num_layers,
              "num_heads": preset.num_heads, "d_kv": preset.d_kv, "is_encoder_decoder": preset.family == "t5",
              "model_type": preset.family}
    return config_parameters(config) or 0.0


def seconds_per_step_at(parameters: float) -> float:
    """CPU seconds per step at batch 16 of a model of this size, from the presets' measured times."""
    points = sorted({(preset_parameters(p), p.cpu_seconds_per_step) for p in PRESETS.values()})
    if parameters <= points[0][0]:
        return points[0][1] * parameters / points[0][0]
    if parameters >= points[-1][0]:
        return points[-1][1] * parameters / points[-1][0]
    for (low_x, low_y), (high_x, high_y) in pairwise(points):
        if low_x <= parameters <= high_x:
            share = math.log(parameters / low_x) / math.log(high_x / low_x) if high_x > low_x else 0.0
            return math.exp(math.log(low_y) + share * (math.log(high_y) - math.log(low_y)))
    return UNKNOWN_SECONDS_PER_STEP


def _config_of(model: str) -> dict | None:
    """A pretrained model's config.json: in its folder, or in the local hub cache (never downloaded)."""
    path: Path | str | None = Path(model) / "config.json"
    if model.startswith("hf:"):
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(model.removeprefix("hf:"), "config.json")
        except Exception:  # noqa: BLE001 - an estimate: any failure means "size unknown"
            path = None
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=256)
def seconds_per_step(model: str) -> float:
    """CPU seconds per training step at batch 16 (~40 tokens) of a preset or pretrained model."""
    if model in PRESETS:
        return PRESETS[model].cpu_seconds_per_step
    config = _config_of(model)
    parameters = config_parameters(config) if isinstance(config, dict) else None
    return seconds_per_step_at(parameters) if parameters else UNKNOWN_SECONDS_PER_STEP
