"""The real training path on the CPU: decoder-only models (loss on the target only, left-padded
generation), LoRA adapters, gradient accumulation and resuming with both."""

import copy

import pytest
import torch

from ablate.cell import _tokenizer_for
from ablate.data.build import build_train_dataset, causal_example, tokenize_dataset
from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.data.encoding import tokenizer_truncation
from ablate.data.select import select_tasks
from ablate.data.library import TaskLibrary
from ablate.evaluate import generate_predictions
from ablate.model import add_lora, build_model, model_kind
from ablate.spec import DataSpec, LoraSpec, TrainSpec
from ablate.train import train_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def rows(synthetic_dir, tmp_path_factory):
    library = TaskLibrary(synthetic_dir)
    tokenizer, tokenizer_id = _tokenizer_for("llama-nano", synthetic_dir, tmp_path_factory.mktemp("cache"))
    data = DataSpec(source="synthetic", num_train_tasks=4, instances_per_task=16,
                    clusters={k: list(v) for k, v in DEFAULT_CLUSTERS.items()})
    train_rows = build_train_dataset(library, select_tasks(library, data, 0), 16, "def",
                                     tokenizer_truncation(tokenizer, 64), seed=0)
    return tokenizer, tokenizer_id, train_rows


def _data(rows, causal):
    tokenizer, tokenizer_id, train_rows = rows
    return tokenize_dataset(train_rows, tokenizer, tokenizer_id, 64, 16, None, causal=causal)


def spec(**changes):
    settings = {"steps": 12, "batch_size": 8, "learning_rate": 3e-3, "max_source_length": 64, "max_target_length": 16,
                "encoding": "def", "log_every": 4, "checkpoint_every": 6, "schedule": "constant"}
    return TrainSpec(**{**settings, **changes})


def test_a_decoder_only_sequence_is_source_then_target_and_eos_with_the_loss_on_the_target_only(rows):
    tokenizer, _, train_rows = rows
    example = causal_example([5, 6, 7], [8, 9], eos_token_id=1)
    assert example["input_ids"] == [5, 6, 7, 8, 9, 1] and example["labels"] == [-100, -100, -100, 8, 9, 1]
    data = _data(rows, causal=True)
    first, source = data[0], tokenizer(train_rows[0]["source"], max_length=64, truncation=True)["input_ids"]
    target = tokenizer(train_rows[0]["target"], add_special_tokens=False)["input_ids"]
    assert first["input_ids"] == source + target + [tokenizer.eos_token_id]
    assert first["labels"][:len(source)] == [-100] * len(source) and first["labels"][len(source):] == target + [1]


def test_prompt_tokens_do_not_change_the_loss(rows):
    """Changing a prompt token changes the logits of the target only through attention; with every
    label on the prompt masked, a batch whose targets are all masked has no loss to learn from."""
    tokenizer, _, _ = rows
    model = build_model("llama-nano", len(tokenizer), seed=0)
    example = causal_example([5, 6, 7, 8], [9, 10], eos_token_id=1)
    batch = {k: torch.tensor([v]) for k, v in example.items()}
    loss = model(**batch).loss
    logits = model(input_ids=batch["input_ids"]).logits[0]
    # HF shifts labels by one: positions 3, 4, 5 predict 9, 10, </s>; nothing else counts.
    expected = torch.nn.functional.cross_entropy(logits[3:6], torch.tensor([9, 10, 1]))
    assert torch.allclose(loss, expected, atol=1e-6)


def test_llama_presets_are_decoder_only_and_train(rows):
    tokenizer, _, _ = rows
    assert model_kind("llama-tiny") == "causal" and model_kind("t5-tiny") == "seq2seq"
    model = build_model("llama-nano", len(tokenizer), seed=0)
    result = train_model(model, tokenizer, _data(rows, causal=True), spec(steps=24, learning_rate=5e-3), seed=0)
    losses = [loss for _, loss in result.loss_history]
    assert losses[-1] < 0.8 * losses[0]


def test_left_padded_batched_generation_equals_one_by_one(rows):
    tokenizer, _, train_rows = rows
    model = build_model("llama-nano", len(tokenizer), seed=0)
    train_model(model, tokenizer, _data(rows, causal=True), spec(steps=30, learning_rate=5e-3), seed=0)
    sources = [train_rows[i]["source"] for i in (0, 5, 17, 40)]
    assert len({len(tokenizer(s)["input_ids"]) for s in sources}) > 1, "prompts of different lengths"
    kwargs = {"max_source_length": 64, "max_new_tokens": 8, "num_beams": 1}
    batched = generate_predictions(model, tokenizer, sources, batch_size=4, **kwargs)
    single = [generate_predictions(model, tokenizer, [s], batch_size=1, **kwargs)[0] for s in sources]
    assert batched == single
    assert any(batched), "the model generates something after training"


@pytest.mark.parametrize("name", ["t5-nano", "llama-nano"])
def test_lora_trains_only_the_adapter_weights(rows, name):
    tokenizer, _, _ = rows
    model = add_lora(build_model(name, len(tokenizer), seed=0), LoraSpec(r=4, alpha=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    train_model(model, tokenizer, _data(rows, causal=name.startswith("llama")), spec(steps=4), seed=0)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all("lora_B" in k or "lora_A" in k for k in changed), changed
    assert any("lora_B" in k for k in changed), "the adapters moved off their zero init"


def test_gradient_accumulation_of_2_x_8_equals_a_batch_of_16(rows):
    tokenizer, _, _ = rows
    data = _data(rows, causal=False)
    one = build_model("t5-nano", len(tokenizer), seed=0)
    two = build_model("t5-nano", len(tokenizer), seed=0)
    big = train_model(one, tokenizer, data, spec(batch_size=16), seed=0)
    accumulated = train_model(two, tokenizer, data, spec(batch_size=8, gradient_accumulation_steps=2), seed=0)
    assert [v for _, v in accumulated.loss_history] == pytest.approx([v for _, v in big.loss_history], rel=1e-4)
    for key, value in one.state_dict().items():
        assert torch.allclose(value, two.state_dict()[key], atol=1e-5), key


def test_resuming_a_lora_cell_with_accumulation_gives_the_uninterrupted_result(rows):
    tokenizer, _, _ = rows
    data = _data(rows, causal=True)
    train = spec(gradient_accumulation_steps=2, batch_size=4, lora=LoraSpec(r=4, alpha=8))
    saved = {}

    def keep(step, make_state):
        saved[step] = copy.deepcopy(make_state())

    straight = add_lora(build_model("llama-nano", len(tokenizer), seed=0), train.lora)
    full = train_model(straight, tokenizer, data, train, seed=0, save_checkpoint=keep)
    assert list(saved) == [6]
    resumed = add_lora(build_model("llama-nano", len(tokenizer), seed=0), train.lora)
    rest = train_model(resumed, tokenizer, data, train, seed=0, resume_state=saved[6])
    assert [v for _, v in rest.loss_history] == pytest.approx([v for _, v in full.loss_history], rel=1e-5)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key


def test_bf16_autocast_trains_on_the_cpu(rows):
    tokenizer, _, _ = rows
    model = build_model("t5-nano", len(tokenizer), seed=0)
    result = train_model(model, tokenizer, _data(rows, causal=False), spec(steps=4, precision="bf16"), seed=0)
    assert all(torch.isfinite(torch.tensor([v for _, v in result.loss_history])))
