"""The results schema: every MLflow metric key, tag name and artifact path ablate writes or reads.

Nothing else in ablate spells a key by hand. Names from task data (task, category and cluster
names) become key segments through `name_key`, which is injective and has an exact inverse
(`name_from_key`), so any name a task file holds gives a valid MLflow key and reads back as
itself:

    name_key("Text Generation -> Word Generation")  ->  "Text Generation -:3e: Word Generation"
    name_key("Misc.")                                ->  "Misc."
    name_key("..")                                   ->  ":2e::2e:"

Characters outside `[A-Za-z0-9_.- ]` are written `:<hex code point>:`; a segment of dots only is
escaped whole (MLflow refuses keys that are not normalised paths). Encodings, whose names hold
only `[a-z0-9_+]`, are written with `-` for `+` (`def+pos2` -> `def-pos2`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence


@dataclass(frozen=True)
class MetricSpec:
    """One metric an evaluator computes (lm-evaluation-harness's metric record, for ablate)."""

    name: str  # its key segment: letters, digits and _ only
    description: str
    low: float = 0.0  # the range a score can take (after `scale`); None: unbounded on that side
    high: float | None = 100.0
    higher_is_better: bool = True
    per_instance: Literal["binary", "bounded", "continuous"] = "bounded"  # 0/1 (exact match), [0, 1] (ROUGE), any
    scale: float = 100.0  # a group's score = scale x the mean of its instances' scores (x100 for shares)
    decimals: int = 4  # rounded as the official script rounds


@dataclass(frozen=True)
class SchemaEntry:
    """One metric key, tag or artifact ablate writes (the docs' reference page is written from these)."""

    kind: Literal["metric", "param", "tag", "artifact"]
    name: str  # the key itself, or its pattern with <placeholders>
    run: Literal["parent", "cell", "parent and cell", "lock"]  # lock: the experiment of a running sweep's lock
    description: str


SCHEMA: list[SchemaEntry] = []  # in the order declared below


def _declare(kind: Literal["metric", "param", "tag", "artifact"], name: str,
             run: Literal["parent", "cell", "parent and cell", "lock"], description: str) -> str:
    """`name`, declared with its description; the constant it is assigned to is its one spelling."""
    SCHEMA.append(SchemaEntry(kind, name, run, description))
    return name


def metric_specs() -> dict[str, MetricSpec]:
    """Every declared metric, by name (all evaluators')."""
    from ablate.evaluators import declared_metrics

    return declared_metrics()


def metric_spec(name: str) -> MetricSpec:
    from ablate.errors import AblateError, did_you_mean

    specs = metric_specs()
    own = _own_key_evaluator(name)
    if own is not None:
        return own.metric_spec_of(name)
    if name not in specs:
        raise AblateError(f"unknown metric '{name}'.", field="--metric",
                          fix=f"{did_you_mean(name, list(specs))} lm-eval scores: lm_eval/<task>/<metric> "
                              "(e.g. lm_eval/mmlu/acc).")
    return specs[name]


def metric_range(name: str) -> tuple[float, float]:
    """The range a metric's scores (and their intervals and fits) live in, from its declaration;
    an open end is infinite. An undeclared metric: the shares' [0, 100]."""
    own = _own_key_evaluator(name)
    spec = own.metric_spec_of(name) if own is not None else metric_specs().get(name)
    if spec is None:
        return 0.0, 100.0
    return (-math.inf if spec.low is None else spec.low, math.inf if spec.high is None else spec.high)


def headline_metric(cells: Sequence[Any] = ()) -> str:
    """The metric a report shows by default: the headline of the first evaluator of the first
    cell (ROUGE-L for the generate evaluator, SuperNI's headline)."""
    from ablate.evaluators import evaluator_of

    first = cells[0].settings.eval.evaluators[0] if cells else None
    evaluator = evaluator_of(first.kind if first is not None else "generate")
    return evaluator.headline_of(first) if evaluator.headline_of is not None else evaluator.headline


def is_metric(name: str) -> bool:
    return name in metric_specs() or _own_key_evaluator(name) is not None


def _own_key_evaluator(key: str):
    """The evaluator whose own keys (e.g. lm_eval/<task>/<metric>) `key` is one of, or None."""
    from ablate.evaluators import EVALUATORS

    prefix = key.split("/", 1)[0]
    return next((e for e in EVALUATORS.values() if e.key_prefix == prefix and e.metric_spec_of is not None
                 and parse_lm_eval_key(key) is not None), None)

# -- metrics -------------------------------------------------------------------------------
# The metrics themselves are declared by the evaluators that compute them (`MetricSpec`, in
# ablate/evaluators/): their names, ranges and how per-instance scores aggregate. Everything
# here that needs to know a metric (parsing keys, the headline of a run, the report, the
# baselines, the dashboard, the CLI's --metric) reads those declarations.
HEADLINE = "headline"  # a category's official headline metric (exact match or ROUGE-L)
GROUPS = ("task", "category", "cluster")  # per-group scores of one test encoding
NO_CLUSTER = "(no cluster)"  # the group of test tasks whose category no cluster names
TRAIN_LOSS = _declare("metric", "train_loss", "cell", "the sft stage's training loss, stepped by optimizer step")
# The dpo stage (ablate/stages/dpo.py): per-step series from TRL's DPOTrainer logs (its log key ->
# ours), its preference pairs, and the DPO implicit reward (policy vs reference) on held-out pairs.
DPO_SERIES = {"loss": _declare("metric", "dpo/loss", "cell", "DPO loss by step"),
              "rewards/margins": _declare("metric", "dpo/reward_margin", "cell",
                                          "DPO implicit reward of chosen minus rejected, by step"),
              "rewards/accuracies": _declare("metric", "dpo/reward_accuracy", "cell",
                                             "share of training pairs whose chosen answer gets the higher implicit reward, by step"),
              "rewards/chosen": _declare("metric", "dpo/reward_chosen", "cell", "implicit reward of the chosen answers, by step"),
              "rewards/rejected": _declare("metric", "dpo/reward_rejected", "cell",
                                           "implicit reward of the rejected answers, by step")}
DPO_LOSS, DPO_REWARD_MARGIN, DPO_REWARD_ACCURACY = DPO_SERIES["loss"], DPO_SERIES["rewards/margins"], \
    DPO_SERIES["rewards/accuracies"]
DPO_HELD_OUT_ACCURACY = _declare("metric", "dpo/held_out_reward_accuracy", "cell",
                                 "held-out pairs whose chosen answer gets the higher implicit reward, in %")
DPO_HELD_OUT_MARGIN = _declare("metric", "dpo/held_out_reward_margin", "cell", "mean implicit reward margin on held-out pairs")
NUM_PREFERENCE_PAIRS = _declare("metric", "num_preference_pairs", "cell", "the dpo stage's training pairs")
# The reward_model stage (ablate/stages/reward_model.py): per-step series from TRL's RewardTrainer
# logs, its pairs, and its ranking of held-out pairs (chosen scored above rejected, in %; the margin).
REWARD_SERIES = {"loss": _declare("metric", "reward_model/loss", "cell", "reward model loss by step"),
                 "accuracy": _declare("metric", "reward_model/accuracy", "cell", "training pairs ranked right, by step"),
                 "margin": _declare("metric", "reward_model/margin", "cell", "chosen minus rejected score, by step")}
REWARD_LOSS = REWARD_SERIES["loss"]
REWARD_HELD_OUT_ACCURACY = _declare("metric", "reward_model/held_out_accuracy", "cell",
                                    "held-out pairs whose chosen answer the reward model scores higher, in %")
REWARD_HELD_OUT_MARGIN = _declare("metric", "reward_model/held_out_margin", "cell",
                                  "mean chosen minus rejected score on held-out pairs")
NUM_REWARD_PAIRS = _declare("metric", "num_reward_pairs", "cell", "the reward_model stage's training pairs")
# The rloo stage (ablate/stages/rloo.py): per-step series from TRL's RLOOTrainer logs (the reward
# model's mean reward of the sampled completions, its spread, the KL to the reference, the loss).
RLOO_SERIES = {"reward": _declare("metric", "rloo/reward", "cell", "mean reward of the sampled completions, by step"),
               "reward_std": _declare("metric", "rloo/reward_std", "cell", "spread of that reward, by step"),
               "kl": _declare("metric", "rloo/kl", "cell", "KL divergence to the reference model, by step"),
               "loss": _declare("metric", "rloo/loss", "cell", "RLOO loss by step"),
               "completions/mean_length": _declare("metric", "rloo/completion_length", "cell",
                                                   "mean length of the sampled completions, by step")}
RLOO_REWARD = RLOO_SERIES["reward"]
NUM_RLOO_PROMPTS = _declare("metric", "num_rloo_prompts", "cell", "the rloo stage's training prompts")
MAX_KEY_LENGTH = 250  # MLflow's limit for metric, param and tag keys

# Cell bookkeeping metrics (step 0 of the child run).
NUM_TRAIN_TASKS = _declare("metric", "num_train_tasks", "cell", "training tasks of the cell")
NUM_TRAIN_EXAMPLES = _declare("metric", "num_train_examples", "cell", "training instances of the cell")
NUM_PARAMETERS = _declare("metric", "num_parameters", "cell", "the model's parameters")
NUM_TRAINABLE_PARAMETERS = _declare("metric", "num_trainable_parameters", "cell",
                                    "parameters that train (the LoRA adapters' only, with train.lora)")
TRAIN_SECONDS = _declare("metric", "train_seconds", "cell", "the stages' training time")
EVAL_SECONDS = _declare("metric", "eval_seconds", "cell", "the evaluators' time")
EXAMPLES_PER_SECOND = _declare("metric", "examples_per_second", "cell", "training examples per second")
TRAIN_STEPS = _declare("metric", "train_steps", "cell", "optimizer steps trained")
DATA_SECONDS = _declare("metric", "data_seconds", "cell", "the cell's time reading tasks, sampling, encoding and tokenizing")
PEAK_MEMORY_MB = _declare("metric", "peak_memory_mb", "cell",
                          "GPU memory allocated by torch on a GPU; the process's peak RSS on a CPU")
CELL_WALL_SECONDS = _declare("metric", "cell_wall_seconds", "cell",
                             "logged by the driver: trial start to end, worker start-up included")
CELL_UNACCOUNTED = _declare("metric", "time/unaccounted_seconds", "cell", "logged by the driver: the wall time no part holds")
CELL_LAUNCH = _declare("metric", "time/launch_seconds", "cell",
                       "logged by the driver: from the trial's start to its first line (Ray placing it, starting a "
                       "worker process when none is idle, importing the trial's module); a prestarted worker's "
                       "earlier life is not in it")
TRIAL_ENTERED_AT = "trial_entered_at"  # reported by a trial to the driver (not logged): the wall-clock time of its first line
TASKS_REMOVED_PREFIX = _declare("metric", "tasks_removed/", "cell",
                                "+ a task-selection rule: how many tasks that rule removed")
_declare("metric", "time/<part>_seconds", "cell", "a part of a cell's wall time (start-up, data, model, each stage, "
         "each evaluator, logging), in seconds")
_declare("metric", "system/<measure>", "cell", "MLflow's system metrics (CPU, memory, disk, network; GPU with "
         "nvidia-ml-py), sampled every 10 s")
_declare("metric", "axis/<axis>", "cell", "a numeric axis value of the cell (a cumulative clusters axis counts its "
         "clusters), for scatter charts")


def cell_time_key(part: str) -> str:
    """A part of a cell's wall time (ablate.cell_clock.PARTS), in seconds."""
    return f"time/{part}_seconds"


def is_cell_time_key(key: str) -> bool:
    return key.startswith("time/") and key.endswith("_seconds") and key not in (CELL_UNACCOUNTED, CELL_LAUNCH)


def is_machine_measure(key: str) -> bool:
    """Whether a cell metric measures the machine (times, speed, memory, system metrics), not the
    model: such metrics differ between runs of the same cell; every other metric must not."""
    return (key in (TRAIN_SECONDS, EVAL_SECONDS, EXAMPLES_PER_SECOND, DATA_SECONDS, PEAK_MEMORY_MB,
                    CELL_WALL_SECONDS, CELL_UNACCOUNTED, LM_EVAL_SECONDS)
            or key.startswith(("time/", "system/")))

# Where a sweep's wall time went (parent run, logged as the sweep ends): see ablate.timing.SweepTiming.
TIMING_PHASES = ("setup", "ray_start", "cells", "report")
TIMING_TOTAL = _declare("metric", "timing/total_seconds", "parent", "the sweep's wall time")
TIMING_CELL_SUM = _declare("metric", "timing/cell_seconds_sum", "parent", "the sum of its cells' wall times")
TIMING_CONCURRENCY = _declare("metric", "timing/concurrency", "parent", "cells running at once, on average")
TIMING_EFFICIENCY = _declare("metric", "timing/efficiency", "parent",
                             "the ideal wall time (cell seconds / concurrency) over the real one")
_declare("metric", "timing/<phase>_seconds", "parent", "the sweep's set-up, Ray start, cells and report phases")


def timing_key(phase: str) -> str:
    return f"timing/{phase}_seconds"

# An adaptive refinement's progress (parent run, stepped by refinement round; see ablate.refine).
REFINE_CELLS = _declare("metric", "refine/cells", "parent", "cells finished, by refinement round")
REFINE_GOAL_VALUE = _declare("metric", "refine/goal_value", "parent",
                             "the goal's measure (the knee interval's ratio, the widest half-width), by round")
REFINE_GOAL_MET = _declare("metric", "refine/goal_met", "parent", "1 once the goal is met, by round")
REFINE_KNEE = _declare("metric", "refine/knee", "parent", "the fitted knee, by round")
REFINE_KNEE_LOW = _declare("metric", "refine/knee_low", "parent", "the knee's 95% interval, lower end, by round")
REFINE_KNEE_HIGH = _declare("metric", "refine/knee_high", "parent", "the knee's 95% interval, upper end, by round")

# lm-evaluation-harness scores (ablate/evaluators/lm_eval.py): one value per lm-eval task, whatever
# the SuperNI test encoding, so their keys have no encoding: lm_eval/<task>/<metric>, where the
# metric is lm-eval's name (acc, acc_stderr, ...), with `.<filter>` for a filter other than "none".
LM_EVAL = "lm_eval"
LM_EVAL_SECONDS = _declare("metric", "lm_eval_seconds", "cell", "the lm_eval evaluator's own time (part of eval_seconds)")


def lm_eval_key(task: str, metric: str, filter_name: str = "none") -> str:
    suffix = "" if filter_name == "none" else f".{name_key(filter_name)}"
    return f"{LM_EVAL}/{name_key(task)}/{metric}{suffix}"


def parse_lm_eval_key(key: str) -> tuple[str, str] | None:
    """(task, metric) of an `lm_eval_key` (the metric with its `.<filter>`), else None."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != LM_EVAL or not parts[1] or not parts[2]:
        return None
    return name_from_key(parts[1]), parts[2]

# -- tags ----------------------------------------------------------------------------------
ROLE = _declare("tag", "ablate.role", "parent and cell", '"parent" (one per sweep) or "cell" (one per cell)')
ROLE_PARENT, ROLE_CELL = "parent", "cell"
SWEEP = _declare("tag", "ablate.sweep", "parent and cell", "the sweep's name")
CELL_ID = _declare("tag", "ablate.cell_id", "cell", "the cell's id: a hash of its resolved settings (see cell identity)")
VERSION = _declare("tag", "ablate.version", "parent and cell", "ablate's version")
GIT_COMMIT = _declare("tag", "ablate.git_commit", "parent and cell", "ablate's git commit, when run from a clone")
DATA_FINGERPRINT = _declare("tag", "ablate.data_fingerprint", "cell", "a hash of the task data the cell read")
AXIS_PREFIX = _declare("tag", "ablate.axis.", "cell", "+ an axis name: the cell's value of that axis (JSON)")
ERROR = _declare("tag", "ablate.error", "cell", "a failed cell's error (the traceback is in error.txt)")
DIVERGED = _declare("tag", "ablate.diverged", "cell", "true when the training loss stopped being finite")
RESUMED_FROM_STEP = _declare("tag", "ablate.resumed_from_step", "cell", "the cell's step (over its stages) it resumed from")
SUPERSEDED = _declare("tag", "ablate.superseded", "cell",
                      "on a cell run of data or settings that changed since: the id of the cell now planned")
RUN_NAME = _declare("tag", "mlflow.runName", "parent and cell",
                    "MLflow's own tag: a run's name (a superseded run's gets \" (superseded)\")")
DEVICE = _declare("tag", "ablate.device", "cell", "cpu, or the CUDA device the cell ran on")
GPU_NAME = _declare("tag", "ablate.gpu_name", "cell", "the GPU's name")
HOST = _declare("tag", "ablate.host", "cell", "the machine's host name")
NODE_ID = _declare("tag", "ablate.node_id", "cell", "the Ray node the cell (last) ran on")
WORKER_PID = _declare("tag", "ablate.worker_pid", "cell", "the worker process: one worker runs several cells in turn")
TORCH_VERSION = _declare("tag", "ablate.torch_version", "cell", "torch's version")
CUDA_VERSION = _declare("tag", "ablate.cuda_version", "cell", "CUDA's version (empty on a CPU build)")
PARENT_RUN = _declare("tag", "mlflow.parentRunId", "cell", "MLflow's own tag: nests a child under its parent in the UI")
NOTE = _declare("tag", "mlflow.note.content", "parent",
                "MLflow's own tag: the description (markdown) of an experiment or run; the parent run's is the report")
EXPERIMENT_KIND = _declare("tag", "mlflow.experimentKind", "parent",
                           "MLflow's own experiment tag: which view the UI opens an experiment on")
TRAINING_KIND = "custom_model_development"  # the runs table and charts (not the GenAI pages)
DATASET_CONTEXT = "mlflow.data.context"  # MLflow's own input tag: what a dataset was used for (training or test)
REFINE_REASON = _declare("tag", "ablate.refine.reason", "cell", "why an adaptive refinement proposed the cell")
FOLDED_INTO = _declare("tag", "ablate.folded_into", "cell", "the cell whose training scored this one on the way (folded steps)")
REFINE_STOPPED = _declare("tag", "ablate.refine.stopped", "parent",
                          'why the refinement stopped ("goal met after K of at most N cells ...")')
# The lock of a running sweep (ablate.track.store_lock): tags of the experiment "<experiment> (ablate sweep running)".
LOCK_HOLDER = _declare("tag", "ablate.lock.holder", "lock", "a random id of the sweep holding the lock")
LOCK_HOST = _declare("tag", "ablate.lock.host", "lock", "the holder's host name")
LOCK_PID = _declare("tag", "ablate.lock.pid", "lock", "the holder's process id")
LOCK_PID_NAMESPACE = _declare("tag", "ablate.lock.pid_namespace", "lock",
                              "the holder's process-id namespace (containers on one host name have their own)")
LOCK_FOLDER = _declare("tag", "ablate.lock.folder", "lock", "the holder's output folder")
LOCK_STARTED = _declare("tag", "ablate.lock.started", "lock", "when the holder took the lock (Unix time)")
LOCK_HEARTBEAT = _declare("tag", "ablate.lock.heartbeat", "lock", "the holder's last heartbeat (Unix time, every 15 s)")
_declare("tag", "ablate.<stage>.resumed_from_step", "cell", "a stage's own step its trainer resumed from (0: from the start)")
_declare("tag", "ablate.<stage>.steps_trained", "cell", "the steps a stage trained in the process that finished it")


def stage_resumed_tags(kind: str, resumed_from: int, trained: int) -> dict[str, str]:
    """A stage's own record of a resume (cell-run tags, set as the stage ends): the stage's own step
    its trainer resumed from (0: from the start) and the steps it trained in this process."""
    return {f"ablate.{kind}.resumed_from_step": str(resumed_from), f"ablate.{kind}.steps_trained": str(trained)}


# -- artifacts -----------------------------------------------------------------------------
SPEC_ARTIFACT = _declare("artifact", "spec.resolved.yaml", "parent", "the spec as resolved (defaults filled in)")
PLAN_ARTIFACT = _declare("artifact", "plan.json", "parent", "the plan: every cell's id, axis values and settings")
BASELINES_ARTIFACT = _declare("artifact", "baselines.json", "parent", "the heuristic baselines' scores")
REPORT_DIR = _declare("artifact", "report", "parent", "the report: figures (PNG and HTML) and report.json")
CELL_ARTIFACT = _declare("artifact", "cell.json", "cell", "the cell's resolved settings")
TASKS_ARTIFACT = _declare("artifact", "tasks.json", "cell", "its training and test tasks")
NAMES_ARTIFACT = _declare("artifact", "names.json", "cell", "key segment -> original name, for every name in its keys")
MODEL_ARTIFACT = _declare("artifact", "model", "cell",
                          "with train.save_model: the model (or LoRA adapter) and its tokenizer (from_pretrained)")
_declare("artifact", "predictions/<enc>.jsonl", "cell", "the generate evaluator's per-instance records (id, prediction, "
         "references, scores)")
_declare("artifact", "predictions/<evaluator>/<enc>.jsonl", "cell", "another evaluator's per-instance records")
_declare("artifact", "unscored/<evaluator>/<enc>.json", "cell",
         "the test tasks an evaluator could not score (e.g. tasks without answer options, for rank)")
ERROR_ARTIFACT = _declare("artifact", "error.txt", "cell", "a failed cell's traceback")


def predictions_artifact(encoding: str, evaluator: str = "generate") -> str:
    """A cell's per-instance records of one evaluator and test encoding (the generate evaluator's
    at their original place, predictions/<encoding>.jsonl)."""
    folder = "predictions" if evaluator == "generate" else f"predictions/{evaluator}"
    return f"{folder}/{encoding_key(encoding)}.jsonl"


def unscored_artifact(encoding: str, evaluator: str) -> str:
    """The test tasks an evaluator could not score (e.g. tasks without answer options, for rank)."""
    return f"unscored/{evaluator}/{encoding_key(encoding)}.json"


LM_EVAL_RESULTS_ARTIFACT = _declare("artifact", "lm_eval/results.json", "cell",
                                    "lm-eval's results (versions, configs, n-shot, seeds)")
_declare("artifact", "lm_eval/samples/<task>.jsonl", "cell", "lm-eval's per-document records (with log_samples)")


def lm_eval_samples_artifact(task: str) -> str:
    """lm-eval's per-document records of one task (with the evaluator's log_samples)."""
    return f"lm_eval/samples/{name_key(task)}.jsonl"


def report_artifact(file_name: str) -> str:
    return f"{REPORT_DIR}/{file_name}"


# -- names to keys -------------------------------------------------------------------------
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.- ")
_ESCAPED = re.compile(r":([0-9a-f]+):")


def name_key(name: str) -> str:
    """A valid MLflow key segment for any non-empty name; injective (see `name_from_key`)."""
    if not name:
        raise ValueError("an empty name has no key")
    if set(name) == {"."}:
        return "".join(f":{ord(c):x}:" for c in name)
    return "".join(c if c in _SAFE else f":{ord(c):x}:" for c in name)


def name_from_key(segment: str) -> str:
    """The name a `name_key` segment was made from."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), segment)


def encoding_key(encoding: str) -> str:
    return encoding.replace("+", "-")


def encoding_from_key(segment: str) -> str:
    return segment.replace("-", "+")


@dataclass(frozen=True)
class MetricKey:
    """One evaluation metric of a cell: `encoding` and `metric`, per `group`/`name` or overall."""

    encoding: str
    metric: str
    group: str | None = None  # one of GROUPS; None: the overall score
    name: str | None = None  # the task, category or cluster

    def key(self) -> str:
        parts = [encoding_key(self.encoding)]
        if self.group is not None:
            parts += [self.group, name_key(self.name or "")]
        return "/".join([*parts, self.metric])


def parse_metric_key(key: str) -> MetricKey | None:
    """The inverse of `MetricKey.key`; None for keys that are not evaluation metrics (of any
    declared metric)."""
    parts = key.split("/")
    if len(parts) == 2 and is_metric(parts[1]):
        return MetricKey(encoding_from_key(parts[0]), parts[1])
    if len(parts) == 4 and parts[1] in GROUPS and (is_metric(parts[3]) or parts[3] == HEADLINE):
        return MetricKey(encoding_from_key(parts[0]), parts[3], parts[1], name_from_key(parts[2]))
    return None


def eval_metrics(encoding: str, result: Mapping[str, Any], metrics_of: Sequence[str]) -> dict[str, float]:
    """Flat MLflow metrics of one test encoding's scores of an evaluator whose metrics are
    `metrics_of` (see `ablate.metrics.evaluate_predictions`): overall, per task, per category
    (with its headline metric, where the evaluator names one) and per cluster."""
    metrics = {MetricKey(encoding, m).key(): result[m] for m in metrics_of}
    for group in GROUPS:
        for name, values in result.get(f"per_{group}", {}).items():
            for m, v in values.items():
                metrics[MetricKey(encoding, m, group, name).key()] = v
    for category, value in result.get("per_category_headline", {}).items():
        metrics[MetricKey(encoding, HEADLINE, "category", category).key()] = value
    return metrics


def names_in(result: Mapping[str, Any]) -> dict[str, str]:
    """Key segment -> original name for every task, category and cluster in a scores dict."""
    return {name_key(name): name for group in GROUPS for name in result.get(f"per_{group}", {})}


def cluster_scores(metrics: Mapping[str, float], encoding: str, metric: str) -> dict[str, float]:
    """Per-cluster scores of one test encoding in a run's metrics, by cluster name."""
    found = {}
    for key, value in metrics.items():
        parsed = parse_metric_key(key)
        if parsed and parsed.group == "cluster" and parsed.encoding == encoding and parsed.metric == metric:
            found[parsed.name] = value
    return found


def overall_score(metrics: Mapping[str, float], encoding: str, metric: str) -> float | None:
    if parse_lm_eval_key(metric) is not None:  # the same whatever the encoding
        return metrics.get(metric)
    return metrics.get(MetricKey(encoding, metric).key())


_declare("metric", "baseline/<baseline>/<metric>", "parent", "a heuristic baseline's overall score (copy_demo, copy_input)")
_declare("metric", "curve/<line>/<metric>", "parent", "a report curve's mean, stepped by the axis value (or the "
         "point's position); `_ci_low` / `_ci_high` suffixes: its 95% interval (two seeds or more)")
_declare("metric", "compare/<group>/<enc>/<A vs B>/<metric>_<statistic>", "parent",
         "a paired comparison of the report: its difference, interval ends, corrected p, P(A beats B)")
_declare("param", "<section>.<field>", "cell", "every resolved setting, flattened (train.learning_rate; "
         "lists as JSON)")
_declare("param", "axis.<axis>", "cell", "the cell's value of an axis, short, for MLflow's Group by")


def baseline_key(baseline: str, metric: str) -> str:
    """A baseline's overall score, as a metric of the parent run."""
    return f"baseline/{name_key(baseline)}/{metric}"


def curve_key(line: str, metric: str, statistic: str = "mean") -> str:
    """A point of a report curve, as a parent-run metric stepped by the axis value (or position)."""
    suffix = "" if statistic == "mean" else f"_{statistic}"
    return f"curve/{name_key(line)}/{metric}{suffix}"


def comparison_key(parts: tuple[str, ...], metric: str, statistic: str = "diff") -> str:
    """A paired comparison of the report as a parent-run metric: its difference, interval ends,
    corrected p, or P(A beats B). `parts` are the comparison's group, test encoding and "A vs B",
    one key segment each (empty parts left out), so the UI shows compare/def:2b:pos2/def vs pos2."""
    segments = "/".join(name_key(part) for part in parts if part)
    return f"compare/{segments}/{metric}_{statistic}"


def axis_metric_key(axis: str) -> str:
    """A numeric axis value of a cell (the number of clusters for train_clusters), for scatter charts."""
    return f"axis/{name_key(axis)}"


def axis_metrics(axis_values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric axis values of a cell as metrics (a cumulative clusters axis by its length)."""
    found = {}
    for axis, value in axis_values.items():
        if axis == "train_clusters" and isinstance(value, list):
            found[axis_metric_key(axis)] = float(len(value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[axis_metric_key(axis)] = float(value)
    return found


def axis_param_key(axis: str) -> str:
    """An axis value of a cell as a short param, for MLflow's "Group by"."""
    return f"axis.{name_key(axis)}"


# -- params --------------------------------------------------------------------------------
def settings_params(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested settings as flat MLflow params (`train.learning_rate`); keys that come from data
    (a cluster map's cluster names) go through `name_key`; lists are JSON."""
    if isinstance(tree, dict):
        flat: dict[str, str] = {}
        for key, value in tree.items():
            flat.update(settings_params(value, f"{prefix}{name_key(str(key))}."))
        return flat
    return {prefix.rstrip("."): json.dumps(tree) if isinstance(tree, list) else str(tree)}


def axis_tags(axis_values: Mapping[str, Any]) -> dict[str, str]:
    return {f"{AXIS_PREFIX}{k}": json.dumps(v) for k, v in axis_values.items()}


def too_long_keys(keys: Iterable[str]) -> list[str]:
    return [k for k in keys if len(k) > MAX_KEY_LENGTH]
