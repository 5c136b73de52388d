"""A catalogue of malformed inputs: each exits 2 with a message naming the file / field / value and
the fix, without a traceback, and starts nothing (no MLflow store or run, no Ray, no file written)."""

import shutil
import socket
from pathlib import Path

import pytest

from ablate.cli import main
from tests.conftest import FIXTURES

BASE = """\
name: bad
data:
  source: synthetic
  instances_per_task: 16
model: t5-tiny
train:
  steps: 10
  batch_size: 8
  learning_rate: 1.0e-3
  max_source_length: 64
  max_target_length: 8
  encoding: def
seeds: [0]
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def replace(old, new):
    def edit(text):
        assert old in text, f"the edit {old!r} -> {new!r} matches nothing in the base spec"
        return text.replace(old, new)

    return edit


def append(extra):
    return lambda text: text + extra


# (case id, spec edit, extra CLI args, fragments the message must hold)
CASES = [
    ("yaml-syntax", replace("  steps: 10", "  steps: 10\n bad indent: 1"), [], ["YAML syntax error at line", "bad.yaml"]),
    ("yaml-not-a-mapping", lambda t: "- just\n- a list\n", [], ["must be a YAML mapping"]),
    ("yaml-python-tag", append("extra: !!python/object/apply:os.system ['echo pwned']\n"), [], ["YAML syntax error"]),
    ("unknown-top-key", replace("seeds: [0]", "seeds: [0]\nnmae: x"), [], ["nmae: unknown key", "Did you mean 'name'?"]),
    ("unknown-nested-key", replace("steps: 10", "stepz: 10"), [], ["train.stepz: unknown key", "Did you mean 'steps'?"]),
    ("wrong-type-int", replace("batch_size: 8", "batch_size: big"), [], ["train.batch_size", "'big'"]),
    ("wrong-type-list", replace("seeds: [0]", "seeds: zero"), [], ["seeds", "valid list"]),
    ("missing-required", replace("model: t5-tiny\n", ""), [], ["model: required field is missing"]),
    ("empty-seeds", replace("seeds: [0]", "seeds: []"), [], ["seeds", "at least 1"]),
    ("repeated-seeds", replace("seeds: [0]", "seeds: [0, 0]"), [], ["seeds repeat"]),
    ("steps-and-epochs", replace("steps: 10", "steps: 10\n  epochs: 1"), [], ["exactly one of 'steps' and 'epochs'"]),
    ("negative-lr", replace("learning_rate: 1.0e-3", "learning_rate: -1"), [], ["train.learning_rate", "greater than 0"]),
    ("zero-concurrency", append("resources: {max_concurrent: 0}\n"), [], ["resources.max_concurrent"]),
    ("bad-name", replace("name: bad", "name: my sweep"), [], ["name", "pattern"]),
    ("empty-axis", append("axes:\n  num_train_tasks: []\n"), [], ["non-empty list"]),
    ("non-positive-axis", append("axes:\n  instances_per_task: [0, 4]\n"), [], ["data.instances_per_task", "greater than 0"]),
    ("unknown-axis", append("axes:\n  num_tasks: [1, 2]\n"), [], ["unknown axis 'num_tasks'", "Did you mean 'num_train_tasks'?"]),
    ("axis-missing-field", append("axes:\n  train.lr: [0.1]\n"), [], ["unknown axis 'train.lr'"]),
    ("too-many-instances", replace("instances_per_task: 16", "instances_per_task: 5000"), [],
     ["asks for 5000 instances", "which has 400", "data.instances_per_task"]),
    ("too-many-tasks", replace("instances_per_task: 16", "instances_per_task: 16\n  num_train_tasks: 999"), [],
     ["asks for 999 training tasks", "data.num_train_tasks"]),
    ("unknown-encoding", replace("encoding: def", "encoding: def+pos2+foo"), [], ["train.encoding", "unknown element 'foo'"]),
    ("unknown-test-encoding", append("eval: {encodings: [def, xyz]}\n"), [], ["eval.encodings", "unknown element 'xyz'"]),
    ("expl-without-examples", replace("encoding: def", "encoding: def+expl"), [], ["'expl' adds explanations"]),
    ("unknown-held-out-cluster", replace("instances_per_task: 16", "instances_per_task: 16\n  held_out_clusters: [nlii]"),
     [], ["data.held_out_clusters: unknown cluster 'nlii'", "Did you mean 'nli'?"]),
    ("unknown-train-cluster-axis", append("axes:\n  train_clusters: [[sentimnt]]\n"), [],
     ["data.train_clusters: unknown cluster 'sentimnt'", "Did you mean 'sentiment'?"]),
    ("held-out-overlaps-train", replace("instances_per_task: 16",
                                        "instances_per_task: 16\n  held_out_clusters: [nli]\n  train_clusters: [nli, sentiment]"),
     [], ["held-out cluster(s) nli are also training clusters"]),
    ("category-in-two-clusters", replace("instances_per_task: 16",
                                         "instances_per_task: 16\n  clusters: {a: [Translation], b: [Translation]}"),
     [], ["category 'Translation' is in both cluster 'a' and cluster 'b'"]),
    ("missing-task-dir", replace("source: synthetic", "source: ./nowhere"), [], ["nowhere", "no 'tasks/' folder", "data.source"]),
    ("corrupt-task-file", replace("source: synthetic", "source: ./corrupt"), [], ["task_bad.json", "invalid JSON"]),
    ("split-names-missing-task", replace("source: synthetic", "source: ./missing_task"), [],
     ["train_tasks.txt", "task_gone"]),
    ("unknown-model", replace("model: t5-tiny", "model: t5-tinyy"), [], ["model", "Did you mean 't5-tiny'?"]),
    ("missing-model-dir", replace("model: t5-tiny", "model: ./no/such/model"), [], ["model directory './no/such/model'"]),
    ("set-missing-field", lambda t: t, ["--set", "train.stepz=3"], ["--set names 'train.stepz'", "not a spec field"]),
    ("set-without-equals", lambda t: t, ["--set", "train.steps"], ["has no '='"]),
    ("set-wrong-type", lambda t: t, ["--set", "train.steps=many"], ["train.steps", "'many'"]),
    ("unreachable-tracking", lambda t: t, ["--tracking-uri", "http://127.0.0.1:{port}"],
     ["tracking server at http://127.0.0.1:", "unreachable", "Fix:"]),
    ("unreachable-ray", lambda t: t, ["--address", "127.0.0.1:{port}"], ["Ray cluster at '127.0.0.1:", "unreachable"]),
    ("gpu-on-a-cpu-machine", append("resources: {gpus_per_cell: 1}\n"), [],
     ["resources.gpus_per_cell: 1", "this machine has 0", "gpus_per_cell: 0"]),
    ("fractional-gpus-above-one", append("resources: {gpus_per_cell: 1.5}\n"), [], ["whole number"]),
    ("fp16-on-the-cpu", replace("encoding: def", "encoding: def\n  precision: fp16"), [], ["fp16 needs a GPU"]),
    ("unknown-precision", replace("encoding: def", "encoding: def\n  precision: fp8"), [], ["train.precision", "'fp8'"]),
    ("lora-target-not-in-model", replace("encoding: def", "encoding: def\n  lora: {r: 4, target_modules: [q_proj]}"),
     [], ["q_proj not in model 't5-tiny'", "Its modules:", "wo"]),
    ("lora-axis-without-lora", append("axes:\n  train.lora.r: [4, 8]\n"), [], ["train.lora is null"]),
    ("model-dir-without-config", replace("model: t5-tiny", "model: ./not_a_model"), [], ["not a model folder"]),
]


def _task_dirs(folder: Path) -> None:
    corrupt = folder / "corrupt"
    (corrupt / "tasks").mkdir(parents=True)
    (corrupt / "tasks" / "task_bad.json").write_text('{"Definition": ["x"], "Instances": [')
    (corrupt / "splits" / "default").mkdir(parents=True)
    (corrupt / "splits" / "default" / "train_tasks.txt").write_text("task_bad\n")
    (corrupt / "splits" / "default" / "test_tasks.txt").write_text("task_bad\n")
    (folder / "not_a_model").mkdir()
    (folder / "not_a_model" / "weights.txt").write_text("not a model")
    missing = folder / "missing_task"
    shutil.copytree(FIXTURES / "tasks", missing)
    (missing / "splits" / "default" / "train_tasks.txt").write_text("task903_edge_punctuated_outputs\ntask_gone\n")


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case, edit, args, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message_and_starts_nothing(tmp_path, monkeypatch, capsys, case, edit,
                                                                    args, fragments):
    import ray

    _task_dirs(tmp_path)
    spec = tmp_path / "bad.yaml"
    spec.write_text(edit(BASE))
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    code = main(["sweep", str(spec), *[a.format(port=port) for a in args]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ablate: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "Fix:" in err
    assert _snapshot(tmp_path) == before, "nothing written (no store, no output folder)"
    assert not ray.is_initialized()


def test_catalogue_is_large_enough():
    assert len(CASES) >= 30


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from ablate.errors import AblateError

    spec = tmp_path / "bad.yaml"
    spec.write_text(BASE.replace("model: t5-tiny", "model: t5-tinyy"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AblateError):
        main(["--debug", "validate", str(spec)])
