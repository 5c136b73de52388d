"""Spec parsing: typed, strict, every error at once with field paths and fixes."""

import textwrap

import pytest
from pydantic import ValidationError

from ablate.errors import AblateError
from ablate.spec import SweepSpec, load_spec
from tests.conftest import REPO

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
    from ablate.prepare import prepare_sweep

    path = write(tmp_path, BASE + "axes:\n  " + axes + "\n")
    with pytest.raises(AblateError, match=says):
        prepare_sweep(str(path), [], workdir=tmp_path)


def _loo_spec(tmp_path, axis, clusters=None):
    import yaml

    raw = yaml.safe_load((REPO / "sweeps" / "smoke.yaml").read_text())
    raw["axes"] = {"held_out_cluster": axis}
    if clusters is not None:
        raw["data"]["clusters"] = clusters
    path = tmp_path / "loo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_leave_one_cluster_out_trains_each_value_on_every_other_cluster_but_its_exclusions(tmp_path):
    from ablate.data.flan import FLAN_CLUSTERS
    from ablate.plan import expand_grid

    spec = load_spec(_loo_spec(tmp_path, {"leave_one_out": "flan", "exclude_together": "flan"}, clusters="flan"))
    assert spec.data.clusters == {k: list(v) for k, v in FLAN_CLUSTERS.items()}
    cells = {c.axis_values["held_out_cluster"]: c.settings.data for c in expand_grid(spec, "fp")}
    assert list(cells) == ["nli", "commonsense", "closed_book_qa"]
    assert cells["nli"].held_out_clusters == ["nli"]
    assert "paraphrase" not in cells["nli"].train_clusters and "nli" not in cells["nli"].train_clusters
    assert "reading_comp_with_commonsense" not in cells["commonsense"].train_clusters
    assert set(cells["closed_book_qa"].train_clusters) == set(FLAN_CLUSTERS) - {"closed_book_qa"}


@pytest.mark.parametrize("axis, says", [
    (["nli"], "leave_one_out"),
    ({"leave_one_out": ["nli", "bogus"]}, "cluster 'bogus' is not a cluster of the map"),
    ({"leave_one_out": ["nli", "nli"]}, "appears twice"),
    ({"leave_one_out": "flna"}, "unknown held_out preset 'flna'"),
    ({"leave_one_out": ["nli"], "exclude_together": [["nli"]]}, "fewer than two"),
])
def test_bad_leave_one_cluster_out_axes_name_the_axis_and_the_fix(tmp_path, axis, says):
    with pytest.raises(AblateError) as caught:
        load_spec(_loo_spec(tmp_path, axis))
    assert "axes.held_out_cluster" in str(caught.value) and says in str(caught.value)


def test_an_unknown_cluster_preset_is_refused(tmp_path):
    with pytest.raises(AblateError) as caught:
        load_spec(_loo_spec(tmp_path, {"leave_one_out": ["nli"]}, clusters="flam"))
    assert "data.clusters" in str(caught.value) and "Did you mean 'flan'" in str(caught.value)
