"""Spec parsing: typed, strict, every error at once with field paths and fixes."""

import textwrap

import pytest
from pydantic import ValidationError

from ablate.errors import AblateError
from ablate.spec import SweepSpec, load_spec

BASE = """\
name: test
data:
  source: synthetic
  instances_per_task: 16
model: t5-tiny
train:
  steps: 10
  batch_size: 8
  learning_rate: 1.0e-3
  max_source_length: 128
  max_target_length: 16
  encoding: def+pos2
seeds: [0]
"""


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_minimal_spec_gets_documented_defaults(tmp_path):
    spec = load_spec(write(tmp_path, BASE))
    assert isinstance(spec, SweepSpec)
    assert spec.eval.instances_per_task == 100 and spec.eval.encodings is None
    assert spec.data.split == "default" and spec.resources.max_concurrent == 2
    with pytest.raises(ValidationError, match="frozen_instance"):
        spec.train.steps = 3  # frozen


def test_every_shipped_spec_loads():
    from pathlib import Path

    shipped = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))
    assert shipped
    for path in shipped:
        load_spec(path)
        assert path.read_text().startswith("#"), f"{path.name} must open with a comment giving its command"


def test_all_errors_reported_at_once_with_did_you_mean(tmp_path):
    text = BASE.replace("steps: 10", "stepz: 10").replace("batch_size: 8", "batch_size: -1") \
               .replace("model: t5-tiny", "model: t5-tiny2").replace("encoding: def+pos2", "encoding: def+pos9x")
    with pytest.raises(AblateError) as error:
        load_spec(write(tmp_path, text))
    message = str(error.value)
    assert "spec.yaml" in message
    assert "train.stepz: unknown key. Did you mean 'steps'?" in message
    assert "train.batch_size" in message and "greater than 0" in message
    assert "model" in message and "Did you mean 't5-tiny'?" in message
    assert "train.encoding" in message and "unknown element 'pos9x'" in message
    assert message.count("\n- ") >= 4


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(AblateError, match=r"YAML syntax error at line 3, column 12: mapping values are not allowed"):
        load_spec(write(tmp_path, "name: x\ndata:\n  source: a: b\n"))


def test_steps_and_epochs_are_exclusive(tmp_path):
    with pytest.raises(AblateError, match="exactly one of 'steps' and 'epochs'"):
        load_spec(write(tmp_path, BASE.replace("steps: 10", "steps: 10\n  epochs: 2")))


def test_set_overrides_are_typed_and_validated(tmp_path):
    path = write(tmp_path, BASE)
    spec = load_spec(path, ["train.steps=25", "seeds=[1, 2]", "axes.model=[t5-tiny, copy_demo]",
                            "axes.train.learning_rate=[0.001, 0.0003]"])
    assert spec.train.steps == 25 and spec.seeds == [1, 2] and spec.axes["model"] == ["t5-tiny", "copy_demo"]
    assert spec.axes["train.learning_rate"] == [0.001, 0.0003], "a dotted axis is one key"
    with pytest.raises(AblateError, match="not a spec field"):
        load_spec(path, ["train.stepz=3"])
    with pytest.raises(AblateError, match="train.steps"):
        load_spec(path, ["train.steps=abc"])


@pytest.mark.parametrize("axes, says", [
    ("num_train_tasks: []", "non-empty list"),
    ("num_train_tasks: [-1, 2]", "greater than or equal to 0"),
    ("num_tasks: [1, 2]", "Did you mean 'num_train_tasks'?"),
    ("train_clusters: [nli, sentiment]", "list of cluster lists"),
    ("train.learning_rate: [[1]]", "scalar"),
    ("instances_per_task: [8, 8]", "repeats"),
    ("train_encoding: [def, def+bogus]", "unknown element 'bogus'"),
])
def test_bad_axes(tmp_path, axes, says):
    from ablate.sweep import prepare_sweep

    path = write(tmp_path, BASE + "axes:\n  " + axes + "\n")
    with pytest.raises(AblateError, match=says):
        prepare_sweep(str(path), [], workdir=tmp_path)
