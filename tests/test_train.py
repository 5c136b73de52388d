"""Training a tiny T5 from config: the loss falls, every parameter moves, and resuming is exact."""

import copy

import pytest
import torch

from ablate.cell import _tokenizer_for
from ablate.data.build import build_train_dataset, tokenize_dataset
from ablate.data.clusters import DEFAULT_CLUSTERS
from ablate.data.encoding import tokenizer_truncation
from ablate.data.select import select_tasks
from ablate.data.tasks import TaskLibrary
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
