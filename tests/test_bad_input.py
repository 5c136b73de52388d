"""A catalogue of malformed inputs: each exits 2 with a message naming the file / field / value and
the fix, without a traceback, and starts nothing (no MLflow store or run, no Ray, no file written)."""

import contextlib
import os
import shutil
import socket
from pathlib import Path

import pytest

from ablate.cli import main
from tests.conftest import FIXTURES, REPO

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


# Nine levels of anchors, each a list of ten references to the one before: 10^9 values once expanded.
NESTED_ANCHORS = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))

# The shipped refinement (sweeps/examples_per_task_refine.yaml), as the base of its blocks' cases.
REFINE = (REPO / "sweeps" / "examples_per_task_refine.yaml").read_text()


def refine(old, new):
    def edit(text):
        assert old in REFINE, f"the edit {old!r} -> {new!r} matches nothing in the refine spec"
        return REFINE.replace(old, new)

    return edit


def edits(*changes):
    """Several edits of the base spec, in order."""
    def edit(text):
        for change in changes:
            text = change(text)
        return text

    return edit


DECODER = replace("model: t5-tiny", "model: llama-nano")  # a model the preference stages train
CONSTANT = replace("encoding: def", "encoding: def\n  schedule: constant")  # a schedule steps can be folded under


def dpo(block):
    """The base spec with a decoder model and the stages [sft, <block>]."""
    return edits(DECODER, append(f"stages: [sft, {block}]\n"))


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
    ("negative-axis-value", append("axes:\n  instances_per_task: [-2, 4]\n"), [],
     ["data.instances_per_task", "greater than or equal to 0"]),
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
    ("missing-model-dir", replace("model: t5-tiny", "model: ./no/such/model"), [], ["no/such/model' does not exist"]),
    ("set-missing-field", lambda t: t, ["--set", "train.stepz=3"], ["--set names 'train.stepz'", "not a spec field"]),
    ("set-without-equals", lambda t: t, ["--set", "train.steps"], ["has no '='"]),
    ("set-wrong-type", lambda t: t, ["--set", "train.steps=many"], ["train.steps", "'many'"]),
    ("unreachable-tracking", lambda t: t, ["--tracking-uri", "http://127.0.0.1:{port}"],
     ["tracking server at http://127.0.0.1:", "unreachable", "Fix:"]),
    ("unreachable-tracking-with-dry-run", lambda t: t, ["--dry-run", "--tracking-uri", "http://127.0.0.1:{port}"],
     ["tracking server at http://127.0.0.1:", "unreachable"]),
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
    # Round two: whole classes of input, each fixed at its root.
    ("spec-not-utf8", lambda t: t.encode() + b"# caf\xe9\n", [], ["cannot read the spec", "not UTF-8"]),
    ("duplicate-yaml-key", replace("  steps: 10", "  steps: 10\n  steps: 20"), [], ["duplicate key 'steps'"]),
    ("yaml-alias-bomb", append("x0: &a0 [1, 1]\n" + "".join(f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n"
                                                              for i in range(1, 120))), [], ["aliases"]),
    ("infinite-epochs", replace("steps: 10", "epochs: .inf"), [], ["train.epochs", "finite"]),
    ("infinite-learning-rate", replace("learning_rate: 1.0e-3", "learning_rate: .inf"), [], ["learning_rate", "finite"]),
    ("nan-weight-decay", replace("encoding: def", "encoding: def\n  weight_decay: .nan"), [], ["weight_decay", "finite"]),
    ("boolean-seed", replace("seeds: [0]", "seeds: [true]"), [], ["seeds.0", "valid integer"]),
    ("huge-seed", replace("seeds: [0]", "seeds: [99999999999]"), [], ["seeds.0", "less than or equal to 2147483647"]),
    ("negative-seed", replace("seeds: [0]", "seeds: [-1]"), [], ["seeds.0", "greater than or equal to 0"]),
    ("name-too-long", replace("name: bad", "name: " + "n" * 300), [], ["name", "at most 100 characters"]),
    ("axis-over-resources", append("axes:\n  resources.max_concurrent: [1, 2]\n"), [], ["cannot be an axis"]),
    ("axis-over-tracking", append("axes:\n  tracking.retry_seconds: [1, 2]\n"), [], ["cannot be an axis"]),
    ("axis-values-collapse", append("axes:\n  train.learning_rate: [0.001, 1.0e-3]\n"), [], ["repeats a value"]),
    ("negative-count", replace("instances_per_task: 16", "instances_per_task: -1"), [],
     ["data.instances_per_task", "greater than or equal to 0"]),
    ("task-file-not-utf8", replace("source: synthetic", "source: ./badutf8"), [], ["task903", "not UTF-8"]),
    ("task-file-dangling-symlink", replace("source: synthetic", "source: ./dangling"), [], ["symlink to nothing"]),
    ("task-file-symlink-loop", replace("source: synthetic", "source: ./loop"), [], ["symlink loop"]),
    ("split-file-is-a-folder", replace("source: synthetic", "source: ./splitdir"), [], ["test_tasks.txt", "is a folder"]),
    ("task-json-nested-too-deep", replace("source: synthetic", "source: ./deepjson"), [], ["nested too deeply"]),
    ("task-listed-twice", replace("source: synthetic", "source: ./twice"), [], ["listed more than once"]),
    ("task-in-train-and-test", replace("source: synthetic", "source: ./both"), [], ["in both the train and the test"]),
    ("duplicate-instance-ids", replace("source: synthetic", "source: ./dupids"), [], ["appears twice"]),
    ("instance-without-input", replace("source: synthetic", "source: ./noinput"), [], ["instance 1 has no 'input'"]),
    ("output-is-a-number", replace("source: synthetic", "source: ./outputint"), [], ["got int"]),
    ("test-task-without-instances", replace("source: synthetic", "source: ./emptytest"), [], ["has no instances"]),
    ("out-is-a-file", lambda t: t, ["--out", "bad.yaml/run"], ["is a file", "--out"]),
    ("sqlite-store-is-a-folder", lambda t: t, ["--tracking-uri", "sqlite:///./not_a_model"], ["is a folder"]),
    ("sqlite-store-not-a-database", lambda t: t, ["--tracking-uri", "sqlite:///./bad.yaml"], ["not an SQLite database"]),
    ("sqlite-store-half-built", lambda t: t, ["--tracking-uri", "sqlite:///./halfbuilt.db"],
     ["halfbuilt.db", "half-built", "_alembic_tmp_experiments", "holds no runs: delete it"]),
    ("unsupported-tracking-scheme", lambda t: t, ["--tracking-uri", "ftp://example.org/x"], ["unsupported tracking URI"]),
    ("ray-address-bad-port", lambda t: t, ["--address", "127.0.0.1:notaport"], ["not a Ray address"]),
    ("steps-absurd", replace("steps: 10", "steps: 1.0e+29"), [], ["train.steps", "exceeded maximum size"]),
    ("steps-over-the-bound", replace("steps: 10", "steps: 200000000"), [], ["less than or equal to 100000000"]),
    ("cost-over-threshold-without-a-terminal", replace("steps: 10", "steps: 90000000"), [],
     ["exceed resources.confirm_over_cells", "no terminal to ask", "--yes"]),
    ("grid-over-the-cell-threshold", append("resources: {confirm_over_cells: 3}\naxes:\n  num_train_tasks: [1, 2, 3, 4]\n"),
     [], ["4 cells", "confirm_over_cells (3)"]),
    # Round three: every bounded number, every block, every source kind.
    ("zero-learning-rate", replace("learning_rate: 1.0e-3", "learning_rate: 0"), [], ["train.learning_rate", "greater than 0"]),
    ("zero-batch-size", replace("batch_size: 8", "batch_size: 0"), [], ["train.batch_size", "greater than 0"]),
    ("zero-source-length", replace("max_source_length: 64", "max_source_length: 0"), [], ["train.max_source_length"]),
    ("zero-target-length", replace("max_target_length: 8", "max_target_length: 0"), [], ["train.max_target_length"]),
    ("unknown-schedule", replace("encoding: def", "encoding: def\n  schedule: cosin"), [], ["train.schedule", "'cosin'"]),
    ("negative-warmup", replace("encoding: def", "encoding: def\n  warmup_steps: -3"), [], ["train.warmup_steps"]),
    ("zero-accumulation", replace("encoding: def", "encoding: def\n  gradient_accumulation_steps: 0"), [],
     ["train.gradient_accumulation_steps"]),
    ("zero-log-every", replace("encoding: def", "encoding: def\n  log_every: 0"), [], ["train.log_every"]),
    ("zero-checkpoint-every", replace("encoding: def", "encoding: def\n  checkpoint_every: 0"), [], ["train.checkpoint_every"]),
    ("negative-weight-decay", replace("encoding: def", "encoding: def\n  weight_decay: -0.1"), [], ["train.weight_decay"]),
    ("lora-rank-zero", replace("encoding: def", "encoding: def\n  lora: {r: 0}"), [], ["train.lora.r"]),
    ("lora-dropout-one", replace("encoding: def", "encoding: def\n  lora: {r: 4, dropout: 1.5}"), [], ["train.lora.dropout"]),
    ("lora-not-a-block", replace("encoding: def", "encoding: def\n  lora: yes"), [], ["train.lora"]),
    ("zero-eval-instances", append("eval: {instances_per_task: 0}\n"), [], ["eval.instances_per_task"]),
    ("zero-new-tokens", append("eval: {max_new_tokens: 0}\n"), [], ["eval.max_new_tokens"]),
    ("zero-beams", append("eval: {num_beams: 0}\n"), [], ["eval.num_beams"]),
    ("zero-eval-batch", append("eval: {batch_size: 0}\n"), [], ["eval.batch_size"]),
    ("zero-cpus-per-cell", append("resources: {cpus_per_cell: 0}\n"), [], ["resources.cpus_per_cell"]),
    ("negative-gpus", append("resources: {gpus_per_cell: -1}\n"), [], ["resources.gpus_per_cell"]),
    ("negative-max-failures", append("resources: {max_failures: -1}\n"), [], ["resources.max_failures"]),
    ("unknown-resources-key", append("resources: {gpu_per_cell: 1}\n"), [], ["resources.gpu_per_cell: unknown key",
                                                                               "Did you mean 'gpus_per_cell'?"]),
    ("axis-not-a-list", append("axes:\n  num_train_tasks: 5\n"), [], ["num_train_tasks"]),
    ("cumulative-empty", append("axes:\n  train_clusters: {cumulative: []}\n"), [], ["cumulative"]),
    ("cumulative-unknown-cluster", append("axes:\n  train_clusters: {cumulative: [sentiment, nlii]}\n"), [],
     ["unknown cluster 'nlii'"]),
    ("cumulative-unknown-order", append("axes:\n  train_clusters: {cumulative: [sentiment], order: shuffled}\n"), [],
     ["order", "'shuffled'"]),
    ("test-encoding-axis-unknown", append("axes:\n  test_encoding: [def, dfe]\n"), [], ["unknown element 'dfe'"]),
    ("empty-cluster-map", replace("instances_per_task: 16", "instances_per_task: 16\n  clusters: {}"), [], ["data.clusters"]),
    ("unknown-split", replace("instances_per_task: 16", "instances_per_task: 16\n  split: nosuch"), [], ["nosuch"]),
    ("source-is-a-file", replace("source: synthetic", "source: ./bad.yaml"), [], ["bad.yaml", "data.source"]),
    ("hf-source-missing", replace("source: synthetic", "source: hf:./no_such_dataset"), [], ["no_such_dataset"]),
    ("name-with-a-slash", replace("name: bad", "name: a/b"), [], ["name", "pattern"]),
    ("empty-experiment-name", append("tracking: {experiment: ''}\n"), [], ["tracking.experiment"]),
    ("empty-spec-file", lambda t: "", [], ["must be a YAML mapping"]),
    ("set-axis-bad-list", lambda t: t, ["--set", "axes.train.learning_rate=[1e-3,"], ["axes.train.learning_rate"]),
    ("set-unknown-axis", lambda t: t, ["--set", "axes.num_tasks=[1,2]"], ["unknown axis 'num_tasks'"]),
    ("storage-unknown-scheme", lambda t: t, ["--storage-path", "nosuch://bucket/x"],
     ["resources.storage_path", "cannot use the storage"]),
    ("storage-under-a-file", lambda t: t, ["--storage-path", "bad.yaml/ray"], ["resources.storage_path", "is a file"]),
    # Round four (issue 28): special files, nested anchors, unwritable places, silent databases,
    # empty test sets, values that collapse.
    ("task-file-is-a-fifo", replace("source: synthetic", "source: ./fifotask"), [],
     ["task903_edge_punctuated_outputs.json", "named pipe (FIFO)"]),
    ("split-file-is-a-fifo", replace("source: synthetic", "source: ./fifosplit"), [], ["test_tasks.txt", "named pipe"]),
    ("task-file-is-a-device", replace("source: synthetic", "source: ./devtask"), [], ["character device"]),
    ("yaml-nested-anchors", append(NESTED_ANCHORS + "axes:\n  num_train_tasks: *a9\n"), [],
     ["anchors and aliases expand to more than 100,000 values"]),
    ("yaml-anchor-refers-to-itself", append("loop: &me [*me]\n"), [], ["refers to itself"]),
    ("out-under-proc", lambda t: t, ["--out", "/proc/ablate-out"], ["'/proc' is not writable", "--out"]),
    ("out-under-sys", lambda t: t, ["--out", "/sys/ablate-out"], ["'/sys' is not writable", "--out"]),
    ("sqlite-store-under-proc", lambda t: t, ["--tracking-uri", "sqlite:////proc/ablate.db"],
     ["/proc/ablate.db", "not writable"]),
    ("storage-under-proc", lambda t: t, ["--storage-path", "/proc/ablate-ray"], ["resources.storage_path", "not writable"]),
    ("postgresql-not-answering", lambda t: t, ["--tracking-uri", "postgresql://ablate:secret@127.0.0.1:{port}/mlflow"],
     ["unreachable at 127.0.0.1:", "postgresql://ablate@127.0.0.1:", "tracking.tracking_uri"]),
    ("postgresql-not-answering-with-dry-run", lambda t: t,
     ["--dry-run", "--tracking-uri", "postgresql+psycopg://127.0.0.1:{port}/mlflow"], ["unreachable at 127.0.0.1:"]),
    ("mysql-not-answering", lambda t: t, ["--tracking-uri", "mysql+pymysql://root@127.0.0.1:{port}/mlflow"],
     ["unreachable at 127.0.0.1:"]),
    ("database-port-not-a-number", lambda t: t, ["--tracking-uri", "postgresql://127.0.0.1:99999/mlflow"],
     ["port that is not a number"]),
    ("split-without-test-tasks", replace("source: synthetic", "source: ./notest"), [], ["no test tasks"]),
    ("axis-int-and-float-collapse", append("axes:\n  instances_per_task: [8, 8.0]\n"), [],
     ["axes.instances_per_task", "repeats a value (8.0, as 8 and as 8.0"]),
    ("axis-lora-blocks-collapse", append("axes:\n  train.lora: [{r: 4}, {r: 4, dropout: 0.0}]\n"), [],
     ["axes.train.lora", "repeats a value"]),
    ("axis-same-value-twice", append("axes:\n  num_train_tasks: [2, 2]\n"), [], ["axes.num_train_tasks", "(2, twice)"]),
    # Round five (issue 39), by class.
    # A device or resources the machine does not have: Ray Tune would wait for them forever.
    ("cpus-per-cell-above-the-machine", append("resources: {cpus_per_cell: 1024}\n"), [],
     ["resources.cpus_per_cell: 1024 CPUs per cell", "this machine has", "no cell could ever start"]),
    ("gpus-per-cell-above-the-machine", append("resources: {gpus_per_cell: 64}\n"), [],
     ["resources.gpus_per_cell: 64 GPU(s) per cell", "this machine has"]),
    ("fp16-as-an-axis-value-on-the-cpu", append("axes:\n  train.precision: [fp32, fp16]\n"), [],
     ["train.precision: fp16 needs a GPU"]),
    # Stores the installed MLflow refuses, or that a URI names wrongly.
    ("tracking-file-store", lambda t: t, ["--tracking-uri", "file:./mlruns"],
     ["'file:./mlruns' names a folder store", "maintenance mode", "sqlite:///mlflow.db", "tracking.tracking_uri"]),
    ("tracking-bare-path", lambda t: t, ["--tracking-uri", "./mlruns"], ["'./mlruns' names a folder store"]),
    ("tracking-file-store-in-the-spec", append("tracking: {tracking_uri: 'file:///tmp/mlruns'}\n"), [],
     ["names a folder store", "mlflow migrate-filestore"]),
    ("tracking-file-store-with-dry-run", lambda t: t, ["--dry-run", "--tracking-uri", "file:./mlruns"],
     ["names a folder store"]),
    ("tracking-databricks", lambda t: t, ["--tracking-uri", "databricks"],
     ["'databricks' names a Databricks workspace", "does not support", "sqlite:///PATH"]),
    ("tracking-databricks-unity-catalog", lambda t: t, ["--tracking-uri", "databricks-uc"], ["Databricks workspace"]),
    ("tracking-sqlite-two-slashes", lambda t: t, ["--tracking-uri", "sqlite://mlflow.db"],
     ["'sqlite://mlflow.db'", "three slashes", "sqlite:///mlflow.db"]),
    ("tracking-sqlite-no-path", lambda t: t, ["--tracking-uri", "sqlite:///"], ["names no database file", "is a folder"]),
    ("tracking-http-without-a-host", lambda t: t, ["--tracking-uri", "http://"], ["'http://' names no host", "HOST:PORT"]),
    ("tracking-https-port-only", lambda t: t, ["--tracking-uri", "https://:5000"], ["names no host"]),
    ("tracking-http-port-not-a-number", lambda t: t, ["--tracking-uri", "http://localhost:port"],
     ["port that is not a number"]),
    ("tracking-unknown-scheme-says-what-is-supported", lambda t: t, ["--tracking-uri", "s3://bucket/mlflow"],
     ["unsupported tracking URI 's3://bucket/mlflow'", "postgresql://"]),
    ("tracking-postgresql-without-a-host-nor-socket", lambda t: t,
     ["--tracking-uri", "postgresql:///mlflow?host=/nonexistent"], ["names no database host", "/nonexistent/.s.PGSQL.5432"]),
    ("tracking-empty-in-the-spec", append("tracking: {tracking_uri: ''}\n"), [], ["tracking.tracking_uri", "at least 1"]),
    # Model folders that are not whole models.
    ("model-folder-without-a-tokenizer", replace("model: t5-tiny", "model: ./config_only"), [],
     ["config_only", "cannot load the tokenizer", "holds none of tokenizer.json", "tokenizer.save_pretrained"]),
    ("model-axis-folder-without-a-tokenizer", append("axes:\n  model: [t5-tiny, ./config_only]\n"), [],
     ["cannot load the tokenizer"]),
    ("model-is-a-file", replace("model: t5-tiny", "model: ./bad.yaml"), [], ["is a file, not a model folder"]),
    ("model-folder-named-bare", replace("model: t5-tiny", "model: not_a_model"), [], ["write ./not_a_model"]),
    ("tasks-without-splits", replace("source: synthetic", "source: ./nosplits"), [], ["has no splits", "train_tasks.txt"]),
    ("split-misspelt", replace("source: synthetic", "source: ./notest\n  split: defualt"), [],
     ["split 'defualt' does not exist", "Did you mean 'default'?"]),
    # A refine: block (the shipped refinement as the base).
    ("refine-budget-zero", refine("budget: {cells: 16}", "budget: {cells: 0}"), [],
     ["refine.budget.cells", "greater than or equal to 1"]),
    ("refine-budget-zero-by-flag", refine("budget: {cells: 16}", "budget: {cells: 16}"), ["--budget", "0"],
     ["refine.budget.cells", "greater than or equal to 1"]),
    ("refine-budget-without-a-limit", refine("budget: {cells: 16}", "budget: {}"), [], ["give cells or cell_hours"]),
    ("refine-axis-not-in-axes", refine("axis: instances_per_task\n  candidates: {low: 1, high: 256, every: power_of_2}",
                                       "axis: num_train_tasks"), [],
     ["refine.axis 'num_train_tasks' has 0 candidate value(s)", "axes.num_train_tasks"]),
    ("refine-unknown-axis", refine("axis: instances_per_task", "axis: instances_per_tsk"), [],
     ["unknown axis 'instances_per_tsk'", "Did you mean 'instances_per_task'?"]),
    ("refine-candidates-of-words", refine("{low: 1, high: 256, every: power_of_2}", "[a, b, c]"), [], ["must be counts"]),
    ("refine-candidates-of-booleans", refine("{low: 1, high: 256, every: power_of_2}", "[true, false]"), [],
     ["must be counts"]),
    ("refine-candidates-a-number", refine("{low: 1, high: 256, every: power_of_2}", "5"), [],
     ["refine.candidates: Input should be a valid list, or a block of fields", "(got 5)"]),
    ("refine-candidates-every-misspelt", refine("every: power_of_2", "every: powers_of_2"), [],
     ["refine.candidates.every: Input should be 'integer' or 'power_of_2'", "'powers_of_2'"]),
    ("refine-goal-kind-misspelt", refine("kind: knee", "kind: kne"), [],
     ["refine.goal: unknown kind 'kne'", "Did you mean 'knee'?", "best, knee, points"]),
    ("refine-goal-without-a-kind", refine("{kind: knee, ratio: 4}", "{ratio: 4}"), [],
     ["refine.goal: the block has no 'kind'", "best, knee, points"]),
    ("refine-goal-field-of-another-goal", refine("{kind: knee, ratio: 4}", "{kind: knee, half_width: 2}"), [],
     ["refine.goal.knee.half_width: unknown key", "Available: kind, no_knee_support, ratio"]),
    # Folded steps.
    ("fold-empty-values", edits(CONSTANT, append("axes:\n  train.steps: {values: [], fold: true}\n")), [],
     ["axes.train.steps", "values: List should have at least 1 item"]),
    ("fold-another-axis", edits(CONSTANT, append("axes:\n  train.learning_rate: {values: [0.1, 0.2], fold: true}\n")), [],
     ["only train.steps can be folded", "axes.train.learning_rate"]),
    ("fold-under-a-decaying-schedule", append("axes:\n  train.steps: {values: [5, 10], fold: true}\n"), [],
     ["folding train.steps needs a schedule", "train.schedule is 'linear'"]),
    ("fold-unknown-key", edits(CONSTANT, append("axes:\n  train.steps: {values: [5, 10], fold: true, every: 5}\n")), [],
     ["every: unknown key", "Available: fold, values"]),
    ("fold-not-a-boolean", edits(CONSTANT, append("axes:\n  train.steps: {values: [5, 10], fold: 'yes'}\n")), [],
     ["fold: Input should be a valid boolean"]),
    ("fold-with-a-later-stage", edits(CONSTANT, dpo("{kind: dpo, steps: 2, pairs: 8}"),
                                      append("axes:\n  train.steps: {values: [5, 10], fold: true}\n")), [],
     ["cells must have one stage, sft"]),
    # Stage and evaluator blocks.
    ("stages-not-a-list", append("stages: 5\n"), [], ["stages: Input should be a valid list (got 5)"]),
    ("stage-without-a-kind", dpo("{steps: 2}"), [], ["stages.1: this stage block has no 'kind'", "dpo, reward_model, rloo, sft"]),
    ("stage-unknown-kind", dpo("{kind: dpoo}"), [], ["stages.1: unknown stage 'dpoo'", "Did you mean 'dpo'?"]),
    ("stage-unknown-field", dpo("{kind: dpo, stepz: 2}"), [], ["stages.1.dpo.stepz: unknown key", "Did you mean 'steps'?"]),
    ("evaluator-without-a-kind", append("eval: {evaluators: [{max_options: 3}]}\n"), [],
     ["eval.evaluators.0: this evaluator block has no 'kind'", "generate"]),
    ("evaluator-unknown-field", append("eval: {evaluators: [{kind: rank, max_optionz: 3}]}\n"), [],
     ["eval.evaluators.0.rank.max_optionz: unknown key"]),
    # A stage's preference file (source), and the pairs in it.
    ("stage-source-is-a-folder", dpo("{kind: dpo, source: ./not_a_model}"), [],
     ["stages.1.dpo.source", "not_a_model': it is a folder, not a file"]),
    ("stage-source-is-a-fifo", dpo("{kind: dpo, source: ./pairs_fifo.jsonl}"), [], ["pairs_fifo.jsonl", "named pipe"]),
    ("stage-source-missing", dpo("{kind: dpo, source: ./no_pairs.jsonl}"), [], ["no_pairs.jsonl': it does not exist"]),
    ("reward-model-source-is-a-folder", dpo("{kind: reward_model, source: ./not_a_model}"), [],
     ["stages.1.reward_model.source", "it is a folder"]),
    ("stage-source-empty", dpo("{kind: dpo, source: ./pairs_empty.jsonl}"), [], ["pairs_empty.jsonl holds no pair(s)"]),
    ("stage-source-not-utf8", dpo("{kind: dpo, source: ./pairs_latin1.jsonl, pairs: 1}"), [],
     ["pairs_latin1.jsonl", "not UTF-8"]),
    ("pairs-line-not-json", dpo("{kind: dpo, source: ./pairs_garbled.jsonl, pairs: 1}"), [],
     ["pairs_garbled.jsonl", "field 'line 2'", "line 2 is not a JSON object", "it is not valid JSON"]),
    ("pairs-row-without-rejected-after-empty-lines", dpo("{kind: dpo, source: ./pairs_norejected.jsonl, pairs: 1}"), [],
     ["pairs_norejected.jsonl", "line 4 is not a JSON object", "it has no 'rejected'"]),
    ("pairs-chosen-a-number", dpo("{kind: dpo, source: ./pairs_number.jsonl, pairs: 1}"), [],
     ["line 1", "it has 'chosen' as a number, not a string"]),
    ("pairs-chosen-empty", dpo("{kind: dpo, source: ./pairs_blank.jsonl, pairs: 1}"), [], ["line 1", "it has an empty 'chosen'"]),
    ("pairs-row-a-list", dpo("{kind: dpo, source: ./pairs_list.jsonl, pairs: 1}"), [], ["line 1 is not a JSON object", "it is a list"]),
    ("reward-model-pairs-line-not-json", dpo("{kind: reward_model, source: ./pairs_garbled.jsonl, pairs: 1}"), [],
     ["line 2 is not a JSON object", "it is not valid JSON"]),
]


def _task_dirs(folder: Path) -> None:
    corrupt = folder / "corrupt"
    (corrupt / "tasks").mkdir(parents=True)
    (corrupt / "tasks" / "task_bad.json").write_text('{"Definition": ["x"], "Instances": [')
    (corrupt / "splits" / "default").mkdir(parents=True)
    (corrupt / "splits" / "default" / "train_tasks.txt").write_text("task_bad\n")
    shutil.copy(FIXTURES / "tasks" / "tasks" / "task901_edge_no_final_punct.json", corrupt / "tasks")
    (corrupt / "splits" / "default" / "test_tasks.txt").write_text("task901_edge_no_final_punct\n")
    (folder / "not_a_model").mkdir()
    import sqlite3
    # what MLflow leaves when it is killed while migrating a new SQLite store
    with contextlib.closing(sqlite3.connect(folder / "halfbuilt.db")) as db:
        db.executescript("CREATE TABLE experiments (experiment_id INTEGER); CREATE TABLE runs (run_uuid TEXT);"
                         "CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER);")
    (folder / "not_a_model" / "weights.txt").write_text("not a model")
    missing = folder / "missing_task"
    shutil.copytree(FIXTURES / "tasks", missing)
    (missing / "splits" / "default" / "train_tasks.txt").write_text("task903_edge_punctuated_outputs\ntask_gone\n")

    def variant(name: str) -> Path:
        copy = folder / name
        shutil.copytree(FIXTURES / "tasks", copy)
        return copy

    train_task = "tasks/task903_edge_punctuated_outputs.json"
    (variant("badutf8") / train_task).write_bytes(b'{"Definition": ["caf\xe9"]}')
    dangling = variant("dangling") / train_task
    dangling.unlink()
    dangling.symlink_to(folder / "nowhere.json")
    loop = variant("loop") / train_task
    loop.unlink()
    loop.symlink_to(loop)
    split_dir = variant("splitdir") / "splits" / "default" / "test_tasks.txt"
    split_dir.unlink()
    split_dir.mkdir()
    (variant("deepjson") / train_task).write_text("[" * 200_000 + "]" * 200_000)
    (variant("twice") / "splits" / "default" / "train_tasks.txt").write_text(
        "task903_edge_punctuated_outputs\ntask903_edge_punctuated_outputs\n")
    (variant("both") / "splits" / "default" / "train_tasks.txt").write_text(
        "task903_edge_punctuated_outputs\ntask901_edge_no_final_punct\n")
    import json

    def edit_task(name: str, change) -> None:
        path = variant(name) / train_task
        task = json.loads(path.read_text())
        change(task)
        path.write_text(json.dumps(task))

    edit_task("dupids", lambda t: t["Instances"].append(dict(t["Instances"][0])))
    edit_task("noinput", lambda t: t["Instances"][1].pop("input"))
    edit_task("outputint", lambda t: t["Instances"][0].update(output=5))
    fifo = variant("fifotask") / train_task
    fifo.unlink()
    os.mkfifo(fifo)
    fifo_split = variant("fifosplit") / "splits" / "default" / "test_tasks.txt"
    fifo_split.unlink()
    os.mkfifo(fifo_split)
    device = variant("devtask") / train_task
    device.unlink()
    device.symlink_to("/dev/zero")  # a read that never ends
    (variant("notest") / "splits" / "default" / "test_tasks.txt").write_text("")
    empty = variant("emptytest") / "tasks/task901_edge_no_final_punct.json"
    task = json.loads(empty.read_text())
    task["Instances"] = []
    empty.write_text(json.dumps(task))
    shutil.copytree(FIXTURES / "tasks" / "tasks", folder / "nosplits" / "tasks")  # tasks/ and no splits/
    # a model folder of a config alone: no tokenizer files (and no weights)
    (folder / "config_only").mkdir()
    (folder / "config_only" / "config.json").write_text(json.dumps(
        {"model_type": "llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 1, "num_attention_heads": 2}))
    _preference_files(folder)


def _preference_files(folder: Path) -> None:
    """JSONL files of preference pairs, one fault each (a stage's `source`)."""
    pair = '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
    (folder / "pairs_empty.jsonl").write_text("")
    (folder / "pairs_latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    (folder / "pairs_garbled.jsonl").write_text(pair + '{"prompt": "p", "chosen": \n')
    (folder / "pairs_norejected.jsonl").write_text(pair + "\n  \n" + '{"prompt": "p", "chosen": "a"}\n')
    (folder / "pairs_number.jsonl").write_text('{"prompt": "p", "chosen": 5, "rejected": "b"}\n')
    (folder / "pairs_blank.jsonl").write_text('{"prompt": "p", "chosen": " ", "rejected": "b"}\n')
    (folder / "pairs_list.jsonl").write_text('["p", "a", "b"]\n')
    os.mkfifo(folder / "pairs_fifo.jsonl")


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case, edit, args, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message_and_starts_nothing(tmp_path, monkeypatch, capsys, case, edit,
                                                                    args, fragments):
    import ray

    _task_dirs(tmp_path)
    spec = tmp_path / "bad.yaml"
    content = edit(BASE)
    spec.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    code = main(["sweep", str(spec), *[a.format(port=port) for a in args]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ablate: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert err.count("Fix:") == 1, err
    assert _snapshot(tmp_path) == before, "nothing written (no store, no output folder)"
    assert not ray.is_initialized()


PROMPT = ["prompt", "corrupt/tasks/task901_edge_no_final_punct.json", "--encoding", "def", "--index", "0",
          "--max-source-length", "8"]
EVALUATE = ["evaluate", "{model}", "--tasks", "clean"]
MODEL_FOLDERS = ("model", "notok", "noweights", "damaged")  # the saved_models fixture's
COMPARE = ["compare", "bad", "--tracking-uri", "{store}"]

# Commands other than `sweep`, and their flags: (case id, argv, fragments the message must hold).
COMMAND_CASES = [
    ("unknown-command", ["swep", "bad.yaml"], ["invalid choice: 'swep'", "choose from 'sweep'"]),
    ("synth-negative-instances", ["synth", "--out", "suite", "--instances", "-2"], ["--instances", "give 1 to"]),
    ("synth-negative-seed", ["synth", "--out", "suite", "--seed", "-5"], ["--seed", "give 0 to"]),
    ("synth-out-is-a-file", ["synth", "--out", "bad.yaml"], ["--out", "is a file"]),
    ("synth-into-a-suite", ["synth", "--out", "corrupt"], ["already holds tasks"]),
    ("eval-zero-instances", ["eval", "--tasks", "corrupt", "--predictions", "p.jsonl", "--instances", "0"],
     ["--instances", "give 1 or more"]),
    ("eval-missing-tasks", ["eval", "--tasks", "nowhere", "--predictions", "p.jsonl"], ["no 'tasks/' folder"]),
    ("eval-missing-predictions", ["eval", "--tasks", "clean", "--predictions", "none.jsonl"], ["none.jsonl"]),
    ("eval-predictions-not-utf8", ["eval", "--tasks", "clean", "--predictions", "latin1.jsonl"], ["not UTF-8"]),
    ("eval-predictions-not-json", ["eval", "--tasks", "clean", "--predictions", "garbled.jsonl"], ["garbled.jsonl"]),
    ("baseline-unknown-split", ["baseline", "--tasks", "emptytest", "--split", "nosuch"], ["nosuch"]),
    ("prompt-missing-task", ["prompt", "nowhere.json", "--encoding", "def", "--index", "0"], ["does not exist"]),
    ("prompt-unknown-encoding", ["prompt", "corrupt/tasks/task901_edge_no_final_punct.json", "--encoding", "dfe",
                                 "--index", "0"], ["unknown element 'dfe'"]),
    ("prompt-index-past-the-end", ["prompt", "corrupt/tasks/task901_edge_no_final_punct.json", "--encoding", "def",
                                   "--index", "99999"], ["--index"]),
    ("prompt-negative-source-length", ["prompt", "corrupt/tasks/task901_edge_no_final_punct.json", "--encoding",
                                       "def", "--index", "0", "--max-source-length", "-5"], ["--max-source-length"]),
    ("plan-unsupported-scheme", ["plan", "good.yaml", "--tracking-uri", "ftp://example.org/x"],
     ["unsupported tracking URI"]),
    ("plan-unreachable-server", ["plan", "good.yaml", "--tracking-uri", "http://127.0.0.1:{port}"], ["unreachable"]),
    ("validate-spec-is-a-folder", ["validate", "corrupt"], ["is a folder"]),
    ("report-missing-store", ["report", "nosuch"], ["no MLflow store"]),
    ("report-unknown-metric", ["report", "nosuch", "--metric", "bleu"], ["--metric", "unknown metric 'bleu'", "Available: abstain_rate, acc, acc_norm, exact_match, hallucination_rate", "lm_eval/<task>/<metric>"]),
    ("dashboard-out-is-a-file", ["dashboard", "good.yaml", "--out", "bad.yaml/site"], ["is a file"]),
    ("ui-port-out-of-range", ["ui", "--port", "70000"], ["--port", "give 1 to 65535"]),
    ("ui-missing-store", ["ui"], ["no MLflow store"]),
    # Round four (issue 28)
    ("validate-spec-is-a-fifo", ["validate", "fifo.yaml"], ["fifo.yaml", "named pipe"]),
    ("validate-spec-is-a-device", ["validate", "/dev/zero"], ["character device"]),
    ("validate-out-under-proc", ["validate", "good.yaml", "--out", "/proc/ablate-out"], ["not writable", "--out"]),
    ("plan-postgresql-not-answering", ["plan", "good.yaml", "--tracking-uri", "postgresql://127.0.0.1:{port}/mlflow"],
     ["unreachable at 127.0.0.1:"]),
    ("eval-predictions-is-a-fifo", ["eval", "--tasks", "clean", "--predictions", "fifo.jsonl"], ["fifo.jsonl", "named pipe"]),
    ("eval-empty-test-task", ["eval", "--tasks", "emptytest", "--predictions", "p.jsonl"],
     ["task901_edge_no_final_punct.json", "has no instances"]),
    ("eval-no-test-tasks", ["eval", "--tasks", "notest", "--predictions", "p.jsonl"], ["no test tasks"]),
    ("eval-split-file-is-a-fifo", ["eval", "--tasks", "fifosplit", "--predictions", "p.jsonl"], ["named pipe"]),
    ("baseline-empty-test-task", ["baseline", "--tasks", "emptytest"], ["has no instances", "Instances"]),
    ("baseline-no-test-tasks", ["baseline", "--tasks", "notest"], ["no test tasks"]),
    ("baseline-test-task-is-a-device", ["baseline", "--tasks", "devtask", "--split", "trainasTest"], ["character device"]),
    ("prompt-task-is-a-fifo", ["prompt", "fifotask/tasks/task903_edge_punctuated_outputs.json", "--encoding", "def",
                               "--index", "0"], ["named pipe"]),
    ("prompt-tokenizer-not-a-tokenizer", [*PROMPT, "--tokenizer", "bad_tokenizer.json"],
     ["bad_tokenizer.json", "is not a tokenizer file", "--tokenizer"]),
    ("prompt-tokenizer-not-json", [*PROMPT, "--tokenizer", "garbled.jsonl"], ["is not a tokenizer file"]),
    ("prompt-tokenizer-is-a-fifo", [*PROMPT, "--tokenizer", "fifo.json"], ["named pipe", "--tokenizer"]),
    ("prompt-tokenizer-missing", [*PROMPT, "--tokenizer", "none.json"], ["does not exist", "--tokenizer"]),
    ("prompt-tokenizer-folder-without-one", [*PROMPT, "--tokenizer", "not_a_model"],
     ["cannot load a tokenizer", "--tokenizer"]),
    ("synth-out-under-proc", ["synth", "--out", "/proc/ablate-suite"], ["not writable", "--out"]),
    ("report-postgresql-not-answering", ["report", "nosuch", "--tracking-uri", "postgresql://127.0.0.1:{port}/mlflow"],
     ["unreachable at 127.0.0.1:"]),
    ("ui-postgresql-not-answering", ["ui", "--tracking-uri", "mysql://127.0.0.1:{port}/mlflow"],
     ["unreachable at 127.0.0.1:"]),
    ("ui-http-not-answering", ["ui", "--tracking-uri", "http://127.0.0.1:{port}"], ["unreachable"]),
    ("dashboard-out-under-proc", ["dashboard", "good.yaml", "--out", "/proc/ablate-site"], ["not writable", "--out"]),
    # Round five (issue 39), by class.
    # A device ablate evaluate cannot use: refused before anything loads ({model} and the others are
    # the saved_models fixture's folders).
    ("evaluate-device-gpu-99", [*EVALUATE, "--device", "cuda:99"], ["--device", "'cuda:99' asks for", "cpu"]),
    ("evaluate-device-tpu", [*EVALUATE, "--device", "tpu"], ["--device", "'tpu' is not a device name", "cpu"]),
    ("evaluate-device-gpu", [*EVALUATE, "--device", "gpu"], ["'gpu' is not a device name"]),
    ("evaluate-device-index-not-a-number", [*EVALUATE, "--device", "cuda:x"], ["'cuda:x' is not a device name"]),
    ("evaluate-device-meta", [*EVALUATE, "--device", "meta"], ["'meta' is not a device name"]),
    ("evaluate-device-empty", [*EVALUATE, "--device", ""], ["--device", "is empty"]),
    # Model folders that are not whole models.
    ("evaluate-folder-without-config", ["evaluate", "./not_a_model", "--tasks", "clean"], ["no config.json", "MODEL"]),
    ("evaluate-model-is-a-file", ["evaluate", "./bad.yaml", "--tasks", "clean"], ["is a file, not a model folder"]),
    ("evaluate-folder-named-bare", ["evaluate", "not_a_model", "--tasks", "clean"], ["write ./not_a_model"]),
    ("evaluate-folder-without-a-tokenizer", ["evaluate", "{notok}", "--tasks", "clean"],
     ["cannot load the tokenizer", "holds none of tokenizer.json", "tokenizer.save_pretrained"]),
    ("evaluate-folder-without-weights", ["evaluate", "{noweights}", "--tasks", "clean"],
     ["holds no weights", "model.safetensors", "MODEL"]),
    ("evaluate-damaged-weights", ["evaluate", "{damaged}", "--tasks", "clean"], ["cannot load the model's weights"]),
    # Its other doors: the tasks, the split, the encoding, the predictions file.
    ("evaluate-tasks-without-splits", ["evaluate", "{model}", "--tasks", "nosplits"], ["has no splits", "train_tasks.txt"]),
    ("evaluate-split-misspelt", [*EVALUATE, "--split", "defualt"], ["split 'defualt' does not exist", "Did you mean 'default'?"]),
    ("evaluate-unknown-encoding", [*EVALUATE, "--encoding", "garbage"], ["--encoding", "unknown element 'garbage'"]),
    ("evaluate-explanations-alone", [*EVALUATE, "--encoding", "def+expl"], ["--encoding", "'expl' adds explanations"]),
    ("evaluate-predictions-out-is-a-folder", [*EVALUATE, "--predictions-out", "corrupt"],
     ["--predictions-out", "'corrupt' exists and it is a folder"]),
    ("evaluate-predictions-out-is-a-fifo", [*EVALUATE, "--predictions-out", "fifo.jsonl"], ["named pipe"]),
    ("evaluate-predictions-out-under-a-file", [*EVALUATE, "--predictions-out", "bad.yaml/p.jsonl"], ["is a file"]),
    ("evaluate-predictions-out-under-proc", [*EVALUATE, "--predictions-out", "/proc/ablate/p.jsonl"], ["not writable"]),
    ("baseline-tasks-without-splits", ["baseline", "--tasks", "nosplits"], ["has no splits"]),
    ("init-out-is-a-folder", ["init", "--ablation", "num_tasks", "--out", "corrupt"], ["--out", "is a folder"]),
    ("init-out-is-a-folder-with-force", ["init", "--ablation", "num_tasks", "--out", "spec_folder.yaml", "--force"],
     ["--out", "is a folder"]),
    # ablate compare on a sweep whose cells have not finished ({store}: the compare_store fixture).
    ("compare-names-nothing", [*COMPARE, "nothing", "instances_per_task=8,train.learning_rate=0.001"],
     ["field 'A'", "'nothing' names no cell of sweep 'bad'", "instances_per_task, train.learning_rate"]),
    ("compare-unknown-axis", [*COMPARE, "num_tasks=8", "instances_per_task=8"],
     ["field 'A'", "has no axis 'num_tasks'", "Available: instances_per_task, seed, train.learning_rate"]),
    ("compare-value-not-in-the-sweep", [*COMPARE, "instances_per_task=8,train.learning_rate=0.001",
                                        "instances_per_task=32,train.learning_rate=0.001"],
     ["field 'B'", "never takes the value 32", "values of 'instances_per_task' in the sweep: 8, 16"]),
    ("compare-the-same-setting-twice", [*COMPARE, "instances_per_task=8,train.learning_rate=0.001",
                                        "train.learning_rate=0.001,instances_per_task=8"], ["field 'B'", "the same setting"]),
    ("compare-more-than-one-setting", [*COMPARE, "instances_per_task=8", "instances_per_task=16"],
     ["matches 2 settings", "add axis=value pairs"]),
    ("compare-no-finished-cells", [*COMPARE, "instances_per_task=8,train.learning_rate=0.001",
                                   "instances_per_task=16,train.learning_rate=0.001"],
     ["field 'A'", "has no finished cell in 'bad' yet (1 to run)"]),
    ("compare-empty-setting", [*COMPARE, "", "instances_per_task=8"], ["argument A", "is empty"]),
    # Stores named wrongly, on the commands that read them.
    ("validate-file-store", ["validate", "good.yaml", "--tracking-uri", "file:./mlruns"], ["names a folder store"]),
    ("validate-file-store-in-the-spec", ["validate", "good.yaml", "--set", "tracking.tracking_uri=./mlruns"],
     ["names a folder store"]),
    ("plan-databricks", ["plan", "good.yaml", "--tracking-uri", "databricks"], ["Databricks workspace"]),
    ("report-file-store", ["report", "nosuch", "--tracking-uri", "file:./mlruns"], ["names a folder store"]),
    ("compare-sqlite-two-slashes", ["compare", "nosuch", "a", "b", "--tracking-uri", "sqlite://x.db"], ["three slashes"]),
    ("ui-http-without-a-host", ["ui", "--tracking-uri", "http://"], ["names no host"]),
    ("ui-postgresql-without-a-host-nor-socket", ["ui", "--tracking-uri", "postgresql:///m?host=/nonexistent"],
     ["names no database host"]),
    # An empty value (an unset shell variable), for every text argument.
    ("sweep-empty-tracking-uri", ["sweep", "good.yaml", "--tracking-uri", ""], ["--tracking-uri", "is empty"]),
    ("validate-empty-out", ["validate", "good.yaml", "--out", " "], ["--out", "is empty"]),
    ("validate-empty-spec", ["validate", ""], ["argument spec", "is empty"]),
    ("sweep-empty-storage-path", ["sweep", "good.yaml", "--storage-path", ""], ["--storage-path", "is empty"]),
    ("report-empty-target", ["report", ""], ["argument target", "is empty"]),
]


def _command_inputs(folder: Path) -> None:
    (folder / "good.yaml").write_text(BASE)
    (folder / "p.jsonl").write_text("")
    (folder / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9", "prediction": "x"}\n')
    (folder / "garbled.jsonl").write_text('{"id": "a", "prediction": \n')
    (folder / "bad_tokenizer.json").write_text('{"not": "a tokenizer"}')
    for name in ("fifo.yaml", "fifo.jsonl", "fifo.json"):
        os.mkfifo(folder / name)
    shutil.copytree(FIXTURES / "tasks", folder / "clean")
    # a split whose test task is a device: the training tasks of the fixture, named as test tasks
    split = folder / "devtask" / "splits" / "trainasTest"
    split.mkdir()
    (split / "train_tasks.txt").write_text("")
    (split / "test_tasks.txt").write_text("task903_edge_punctuated_outputs\n")
    (folder / "spec_folder.yaml").mkdir()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, str]:
    """Model folders for `ablate evaluate`: a whole one (an untuned llama-nano and a word-level
    tokenizer), one without tokenizer files, one without weights, one with damaged weights."""
    from ablate.data.tokenizer import task_dir_tokenizer
    from ablate.model import build_model

    root = tmp_path_factory.mktemp("models")
    tokenizer, _ = task_dir_tokenizer(FIXTURES / "tasks", root / "cache")
    model = root / "model"
    build_model("llama-nano", len(tokenizer), seed=0).save_pretrained(model)
    tokenizer.save_pretrained(model)
    folders = {"model": model}
    for name, keep in (("notok", lambda f: "token" not in f.name), ("noweights", lambda f: f.suffix != ".safetensors"),
                       ("damaged", lambda f: True)):
        folders[name] = root / name
        shutil.copytree(model, folders[name], ignore=lambda _, names, keep=keep: [n for n in names if not keep(Path(n))])
    weights = folders["damaged"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return {name: str(folder) for name, folder in folders.items()}


@pytest.fixture(scope="module")
def compare_store(tmp_path_factory) -> str:
    """A SQLite store holding sweep 'bad' (2 x 2 settings) as a sweep records it before any cell
    finishes: its experiment, parent run and plan, no cell runs."""
    import json

    from ablate import results
    from ablate.plan import SweepPlan
    from ablate.prepare import prepare_sweep
    from ablate.track import Store, create_sqlite_store

    folder = tmp_path_factory.mktemp("compare")
    spec = folder / "bad.yaml"
    spec.write_text(BASE + "axes:\n  instances_per_task: [8, 16]\n  train.learning_rate: [1.0e-3, 2.0e-3]\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # MLflow puts the artifacts beside the store
        prepared = prepare_sweep(str(spec), [])
        create_sqlite_store(Path(prepared.tracking_uri[len("sqlite:///"):]))
        store = Store(prepared.tracking_uri)
        parent = store.start_parent_run(store.ensure_experiment(prepared.experiment), prepared.spec.name, {})
        store.log_text(parent, json.dumps(SweepPlan(prepared.spec.name, list(prepared.cells)).to_json()),
                       results.PLAN_ARTIFACT)
    return prepared.tracking_uri


@pytest.mark.parametrize("case, argv, fragments", COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES])
def test_bad_command_exits_2_with_a_clear_message_and_writes_nothing(tmp_path, monkeypatch, capsys, case, argv,
                                                                       fragments, request):
    import ray

    _task_dirs(tmp_path)
    (tmp_path / "bad.yaml").write_text(BASE)
    _command_inputs(tmp_path)
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    # the module's model folders and store, made once, for the cases that name them
    named = " ".join(argv)
    folders = {**(request.getfixturevalue("saved_models") if any(f"{{{name}}}" in named for name in MODEL_FOLDERS)
                  else {}), **({"store": request.getfixturevalue("compare_store")} if "{store}" in named else {})}
    capsys.readouterr()  # what making them printed
    try:
        code = main([a.format(port=port, **folders) for a in argv])
    except SystemExit as exc:  # argparse's errors, in ablate's form
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ablate: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert err.count("Fix:") == 1 and len(err.strip().splitlines()) <= 3, err
    assert _snapshot(tmp_path) == before, "nothing written"
    assert not ray.is_initialized()


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_a_device_this_machine_lacks_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys, device):
    """`ablate evaluate --device` names a device of a kind torch knows, which this machine lacks
    (where it has it, there is nothing to refuse)."""
    import torch

    if (device.startswith("cuda") and torch.cuda.is_available()) or (device == "mps" and torch.backends.mps.is_available()):
        pytest.skip(f"this machine has {device}")
    monkeypatch.chdir(tmp_path)
    code = main(["evaluate", "./no_model_is_read", "--tasks", "nowhere", "--device", device])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ablate: error: ") and "Traceback" not in err, err
    assert "field '--device'" in err and f"'{device}' asks for" in err and "Fix: give one of the devices of this " \
        "machine: cpu" in err and err.count("Fix:") == 1, err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("uri, driver", [("mssql://127.0.0.1:{port}/mlflow", "pyodbc"),
                                         ("mysql://127.0.0.1:{port}/mlflow", "pymysql")])
def test_a_database_store_without_its_driver_is_refused_naming_the_install(tmp_path, monkeypatch, capsys, uri, driver):
    """A database that answers, whose Python driver is not installed: the driver and its install
    named before MLflow tries it (the catalogue's closed ports stop at the reachability check)."""
    import importlib.util

    if importlib.util.find_spec(driver):
        pytest.skip(f"{driver} is installed")
    (tmp_path / "good.yaml").write_text(BASE)
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    with socket.socket() as server:  # a port that accepts connections (the backlog answers)
        server.bind(("127.0.0.1", 0))
        server.listen()
        code = main(["plan", "good.yaml", "--tracking-uri", uri.format(port=server.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ablate: error: ") and "Traceback" not in err, err
    assert "needs the Python driver" in err and f"pip install {driver}" in err and err.count("Fix:") == 1, err
    assert _snapshot(tmp_path) == before


def test_a_cluster_without_a_node_that_fits_a_cell_is_refused(monkeypatch):
    """On a cluster (--address), a cell's CPUs and GPUs must fit one node: Ray Tune would wait
    forever for a cell no node can hold."""
    import ray

    from ablate.errors import AblateError
    from ablate.ray_runtime import check_cluster_resources

    nodes = [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]  # a dead node counts for nothing
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    for cpus, gpus in ((8, 0), (4, 1), (1, 0.5)):
        check_cluster_resources(cpus, gpus)
    for cpus, gpus, fragments in ((16, 0, ["resources.cpus_per_cell", "16 CPU(s)", "the largest node has 8"]),
                                  (8, 1, ["resources.cpus_per_cell", "8 CPU(s) and 1 GPU(s)", "with 1 GPU(s): 4"]),
                                  (1, 2, ["resources.gpus_per_cell", "2 GPU(s)", "largest node of the cluster has 1"])):
        with pytest.raises(AblateError) as raised:
            check_cluster_resources(cpus, gpus)
        assert all(f in raised.value.render() for f in fragments), raised.value.render()


def test_catalogue_is_large_enough():
    assert len(CASES) + len(COMMAND_CASES) >= 100


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from ablate.errors import AblateError

    spec = tmp_path / "bad.yaml"
    spec.write_text(BASE.replace("model: t5-tiny", "model: t5-tinyy"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AblateError):
        main(["--debug", "validate", str(spec)])


@contextlib.contextmanager
def _server_that_answers_only_health():
    """An HTTP server whose /health says OK and whose every API call answers 503: a tracking
    server that passes the start-up check, then stays unavailable."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            healthy = self.path.rstrip("/").endswith("/health")
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"OK" if healthy else b"unavailable")

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_store_down_past_the_retry_window_is_one_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # ablate's window, not MLflow's own retries
    (tmp_path / "good.yaml").write_text(BASE + "tracking: {retry_seconds: 1}\n")
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    with _server_that_answers_only_health() as uri:
        code = main(["plan", "good.yaml", "--tracking-uri", uri])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ablate: error: ") and "Traceback" not in err
    assert "did not answer for the whole retry window (1 s)" in err and "tracking.retry_seconds" in err, err
    assert err.count("Fix:") == 1, err
    assert _snapshot(tmp_path) == before, "nothing written"
    assert not ray.is_initialized()


@pytest.mark.slow
def test_a_sweep_whose_store_goes_down_past_the_retry_window_ends_with_one_message(tmp_path):
    """The real entry point: Ray may have started beside the store's set-up; it is stopped, and
    the store's failure is one paragraph with its fix, exit 2."""
    import subprocess
    import sys

    from tests.conftest import REPO

    (tmp_path / "good.yaml").write_text(BASE + "tracking: {retry_seconds: 1}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "PYTHONPATH": str(REPO)}
    with _server_that_answers_only_health() as uri:
        result = subprocess.run([sys.executable, "-m", "ablate.cli", "sweep", "good.yaml", "--tracking-uri", uri],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert "ablate: error: " in result.stderr and "did not answer for the whole retry window (1 s)" in result.stderr
