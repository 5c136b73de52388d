"""Training a tiny T5 from config: the loss falls, every parameter moves, and resuming is exact."""

import copy

import pytest
import torch

from ablate.cell import _tokenizer_for
from ablate.data.build import build_train_dataset, tokenize_dataset
from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.data.encoding import tokenizer_truncation
from ablate.data.select import select_tasks
from ablate.data.library import TaskLibrary
from ablate.model import build_model
from ablate.spec import DataSpec, TrainSpec
from ablate.train import DivergedError, train_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(synthetic_dir, tmp_path_factory):
    library = TaskLibrary(synthetic_dir)
    tokenizer, tokenizer_id = _tokenizer_for("t5-tiny", synthetic_dir, tmp_path_factory.mktemp("cache"))
    data = DataSpec(source="synthetic", num_train_tasks=4, instances_per_task=16,
                    clusters={k: list(v) for k, v in DEFAULT_CLUSTERS.items()})
    selection = select_tasks(library, data, seed=0)
    rows = build_train_dataset(library, selection, 16, "def", tokenizer_truncation(tokenizer, 64), seed=0)
    data = tokenize_dataset(rows, tokenizer, tokenizer_id, 64, 16, None)
    return tokenizer, data


def spec(**changes):
    settings = dict(steps=24, batch_size=8, learning_rate=3e-3, max_source_length=64, max_target_length=16,
                    encoding="def", log_every=4, checkpoint_every=12, schedule="constant")
    return TrainSpec(**{**settings, **changes})


def test_loss_is_finite_falls_and_every_parameter_changes(tiny):
    tokenizer, data = tiny
    model = build_model("t5-tiny", len(tokenizer), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_model(model, tokenizer, data, spec(), seed=0)
    losses = [loss for _, loss in result.loss_history]
    assert [s for s, _ in result.loss_history] == [4, 8, 12, 16, 20, 24]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0]
    unchanged = [k for k, v in model.state_dict().items() if torch.equal(v, before[k])]
    assert not unchanged, f"parameters that did not train: {unchanged}"


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tiny):
    tokenizer, data = tiny
    saved = {}

    def keep(step, make_state):
        saved[step] = copy.deepcopy(make_state())

    straight = build_model("t5-tiny", len(tokenizer), seed=0)
    full = train_model(straight, tokenizer, data, spec(), seed=0, save_checkpoint=keep)
    assert list(saved) == [12]
    resumed = build_model("t5-tiny", len(tokenizer), seed=5)  # different init: the state must overwrite it
    rest = train_model(resumed, tokenizer, data, spec(), seed=0, resume_state=saved[12])
    assert [s for s, _ in rest.loss_history] == [s for s, _ in full.loss_history]
    assert [v for _, v in rest.loss_history] == pytest.approx([v for _, v in full.loss_history], rel=1e-5)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key


def test_divergence_is_reported_as_such(tiny):
    tokenizer, data = tiny
    model = build_model("t5-tiny", len(tokenizer), seed=0)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(DivergedError, match="diverged"):
        train_model(model, tokenizer, data, spec(steps=2), seed=0)


def _with_dropout(model, p: float = 0.3):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    return model


def test_a_resumed_cell_draws_the_dropout_masks_of_the_uninterrupted_one(tiny):
    """Pretrained models train with dropout: the checkpoint carries the generator's state, so what
    ran in the worker before the resume (here: other draws) changes nothing."""
    tokenizer, data = tiny
    saved = {}

    def keep(step, make_state):
        saved[step] = copy.deepcopy(make_state())

    straight = _with_dropout(build_model("t5-tiny", len(tokenizer), seed=0))
    train_model(straight, tokenizer, data, spec(), seed=0, save_checkpoint=keep)
    resumed = _with_dropout(build_model("t5-tiny", len(tokenizer), seed=0))
    torch.rand(1000)  # another cell's draws in a reused worker
    train_model(resumed, tokenizer, data, spec(), seed=0, resume_state=saved[12])
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_pretrained_model_with_lora_starts_the_same_whatever_ran_before(tiny, tmp_path):
    from ablate.model import add_lora
    from ablate.spec import LoraSpec

    tokenizer, _ = tiny
    build_model("t5-tiny", len(tokenizer), seed=0).save_pretrained(tmp_path / "pretrained")
    adapters = []
    for earlier_draws in (0, 1000):
        torch.rand(earlier_draws)
        model = add_lora(build_model(str(tmp_path / "pretrained"), len(tokenizer), seed=3), LoraSpec(r=4))
        adapters.append({k: v.clone() for k, v in model.state_dict().items() if "lora_" in k})
    assert adapters[0] and adapters[0].keys() == adapters[1].keys()
    for key, value in adapters[0].items():
        assert torch.equal(value, adapters[1][key]), key
