"""The `ablate` command line. Heavy imports happen inside each command, so --help is instant.

    ablate sweep sweeps/clusters.yaml        run a sweep (Ray Tune + MLflow)
    ablate plan sweeps/clusters.yaml         list its cells, their status and a cost estimate
    ablate validate sweeps/clusters.yaml     check a spec without running anything
    ablate report sweeps/clusters.yaml       curves, saturation fits and figures from MLflow
    ablate compare sweeps/encodings.yaml train_encoding=def train_encoding=pos2   a paired difference
    ablate ui                                browse results in the MLflow UI
    ablate dashboard dashboards/instruction_tuning.yaml --out site/   several sweeps on one page
    ablate init --ablation num_tasks --source synthetic --out my.yaml   a commented starting spec
    ablate schema                            the spec's JSON Schema (for editors)
    ablate prompt | eval | baseline | synth  the data layer on its own
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ablate.credentials import redact
from ablate.errors import AblateError
from ablate.files import check_output_file, check_output_folder


def _add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="sweep spec YAML (see sweeps/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec field, e.g. --set train.steps=50 (repeatable)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db here)")
    parser.add_argument("--out", help="output folder for plan, caches and Ray logs (default: ablate_runs/NAME)")


def cmd_sweep(args) -> int:
    from ablate.plan_report import plan_report
    from ablate.prepare import prepare_sweep
    from ablate.status import start_status_prefetch
    from ablate.sweep import run_sweep

    overrides = list(args.overrides)
    if args.budget is not None:  # the same as --set refine.budget.cells=N
        overrides.append(f"refine.budget.cells={args.budget}")
    if args.storage_path:  # a JSON string is a YAML string: the value is never read as a number or a list
        overrides.append(f"resources.storage_path={json.dumps(args.storage_path)}")
    prefetch = start_status_prefetch(args.spec, overrides, args.tracking_uri)
    prepared = prepare_sweep(args.spec, overrides, tracking_uri=args.tracking_uri, output_dir=args.out,
                             address=args.address)
    if args.dry_run:
        return _show_plan(plan_report(prepared, prefetch), args.json)
    from ablate.track.server import check_can_write
    from ablate.track.uri import check_tracking_uri

    # A tracking server that refuses the credentials, or lets this user only read the experiment,
    # stops the sweep here: before Ray starts and before anything is written.
    check_tracking_uri(prepared.tracking_uri)
    check_can_write(prepared.tracking_uri, prepared.experiment)
    if args.address:
        from ablate.ray_runtime import check_ray_address

        check_ray_address(args.address)
    proposer = None
    if prepared.spec.refine is not None:  # an adaptive design over the candidate grid (ablate/refine.py)
        from ablate.refine import refine_proposer

        proposer = refine_proposer(prepared)
    return run_sweep(prepared, address=args.address, force=args.force, yes=args.yes, prefetch=prefetch,
                     proposer=proposer)


def _show_plan(report: dict, as_json: bool) -> int:
    from ablate.plan_report import print_plan

    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_plan(report, sys.stdout)
    return 0


def cmd_plan(args) -> int:
    from ablate.plan_report import plan_report
    from ablate.prepare import prepare_sweep
    from ablate.status import start_status_prefetch

    prefetch = start_status_prefetch(args.spec, args.overrides, args.tracking_uri)
    prepared = prepare_sweep(args.spec, args.overrides, tracking_uri=args.tracking_uri, output_dir=args.out)
    report = plan_report(prepared, prefetch)
    _save_task_index(prepared)
    return _show_plan(report, args.json)


def cmd_validate(args) -> int:
    from ablate.prepare import prepare_sweep

    prepared = prepare_sweep(args.spec, args.overrides, tracking_uri=args.tracking_uri, output_dir=args.out)
    _save_task_index(prepared)
    prepared.print_warnings(sys.stdout)
    for note in prepared.notes:
        print(f"Tasks: {note}")
    print(f"{args.spec}: OK ({len(prepared.cells)} cells)")
    return 0


def _save_task_index(prepared) -> None:
    """Once a spec checks out, `validate` and `plan` save the index of its task directories (the
    file a sweep writes, ablate_runs/NAME/cache/index/), so the next validate, plan or sweep reads
    it instead of every task file. Not for the synthetic suite or an hf: dataset: those exist only
    once a sweep generates or converts them."""
    from ablate.data.sources import HF_PREFIX, SYNTHETIC
    from ablate.sweep_setup import save_task_indexes

    cells = [c for c in prepared.cells
             if c.settings.data.source != SYNTHETIC and not c.settings.data.source.startswith(HF_PREFIX)]
    if cells:
        save_task_indexes(cells, prepared.output_dir / "cache", tokenizers=False)


def cmd_prompt(args) -> int:
    from ablate.data.encoding import build_source, parse_encoding, tokenizer_truncation
    from ablate.data.tasks import load_task

    task = load_task(args.task_json)
    encoding = parse_encoding(args.encoding)
    if not 0 <= args.index < len(task.instances):
        raise AblateError(f"instance index {args.index} is out of range; the task has {len(task.instances)}.",
                          file=args.task_json, field="--index", fix=f"use 0 to {len(task.instances) - 1}.")
    instance = task.instances[args.index]
    if args.max_source_length and not args.tokenizer:
        raise AblateError("--max-source-length needs --tokenizer (a tokenizer.json or a local model folder).",
                          field="--tokenizer", fix="add --tokenizer PATH.")
    # A tokenizer named is always loaded (so a bad one is an error, not silently unused) and counts the prompt.
    tokenizer = _load_tokenizer(args.tokenizer) if args.tokenizer else None
    truncation = tokenizer_truncation(tokenizer, args.max_source_length) if args.max_source_length else None
    source = build_source(task, instance, encoding, truncation)
    tokens = len(tokenizer(source)["input_ids"]) if tokenizer is not None else None
    if args.json:
        print(json.dumps({"task": task.name, "id": instance.id, "source": source,
                          "references": list(instance.references), "source_tokens": tokens}, ensure_ascii=False))
    else:
        sys.stdout.write(source + "\n")
        if tokens is not None:  # on stderr: stdout stays the prompt alone, for pipes
            print(f"{tokens} tokens (special tokens included)", file=sys.stderr)
    return 0


def _load_tokenizer(path: str):
    from ablate.data.tokenizer import TOKENIZER_FIX, as_hf_tokenizer

    # A tokenizer.json, or any other file named: it is checked as one (a FIFO, a model's weights...).
    if path.endswith(".json") or os.path.lexists(path) and not Path(path).is_dir():
        return as_hf_tokenizer(path, field="--tokenizer")
    from transformers import AutoTokenizer

    from ablate.model import pretrained_path

    try:
        return AutoTokenizer.from_pretrained(pretrained_path(path))
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError or KeyError here
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise AblateError(f"cannot load a tokenizer from it ({reason}).", file=path, field="--tokenizer",
                          fix=TOKENIZER_FIX) from None


def _test_rows(task_dir: str, split: str, instances: int):
    """(task, instance) pairs of a split's test tasks: the first N instances of each."""
    from ablate.data.build import eval_pairs
    from ablate.data.library import TaskLibrary

    library = TaskLibrary(task_dir)
    return eval_pairs(library, library.split(split).test_tasks, instances)


def _default_cluster_of() -> dict[str, str]:
    from ablate.data.clusters import DEFAULT_CLUSTERS, category_to_cluster

    return category_to_cluster(DEFAULT_CLUSTERS)


def _print_scores(title: str, result: dict) -> None:
    from ablate.evaluators.generate import GENERATE

    print(f"{title}: " + "  ".join(f"{m} {result[m]:.4f}" for m in GENERATE.metric_names))
    for category, values in result["per_category"].items():
        metric = result["headline_metric"][category]
        print(f"  {category:<40} {metric} {values[metric]:.4f}")


def cmd_eval(args) -> int:
    rows = _test_rows(args.tasks, args.split, args.instances)
    predictions = _read_predictions(args.predictions)
    wanted = [instance.id for _, instance in rows]
    missing = [i for i in wanted if i not in predictions]
    unknown = sorted(set(predictions) - set(wanted))
    if missing or unknown:
        detail = []
        if missing:
            detail.append(f"{len(missing)} test instance(s) have no prediction (first: '{missing[0]}')")
        if unknown:
            detail.append(f"{len(unknown)} prediction id(s) are not test instances of split '{args.split}' "
                          f"(first: '{unknown[0]}')")
        raise AblateError("; ".join(detail) + ".", file=args.predictions, field="id",
                          fix=f"give one line per test instance (first {args.instances} of each test task).")
    from ablate.evaluate import score_pairs

    result = score_pairs(rows, [predictions[i] for i in wanted], _default_cluster_of())
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_scores(args.predictions, result)
    return 0


def _read_predictions(path: str) -> dict[str, str]:
    from ablate.files import read_text

    predictions: dict[str, str] = {}
    lines = read_text(path, "the predictions", 'give a JSONL file of {"id": ..., "prediction": ...} lines.').splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key, text = str(record["id"]), record["prediction"]
        except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
            raise AblateError(f"line {number} is not a JSON object with 'id' and 'prediction'.", file=path,
                              field=f"line {number}", fix='write lines like {"id": "task1-0", "prediction": "yes"}.') from None
        if not isinstance(text, str):
            raise AblateError(f"line {number}: 'prediction' must be a string.", file=path, field=f"line {number}",
                              fix="write the prediction as a JSON string.")
        if key in predictions:
            raise AblateError(f"line {number}: id '{key}' appears twice.", file=path, field="id",
                              fix="give one prediction per instance.")
        predictions[key] = text
    return predictions


def cmd_baseline(args) -> int:
    from ablate.baselines import score_baselines

    rows = _test_rows(args.tasks, args.split, args.instances)
    results = score_baselines(rows, _default_cluster_of())
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, result in results.items():
            _print_scores(name, result)
    return 0


def cmd_evaluate(args) -> int:
    from ablate.evaluate_model import evaluate_model
    from ablate.files import write_text_atomic

    if args.predictions_out:
        check_output_file(args.predictions_out, "--predictions-out")
    result = evaluate_model(args.model, args.tasks, split=args.split, encoding=args.encoding,
                            evaluator=args.evaluator, instances=args.instances,
                            max_source_length=args.max_source_length, max_target_length=args.max_target_length,
                            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                            max_options=args.max_options, options_in_prompt=args.options_in_prompt, device=args.device)
    if args.predictions_out:
        write_text_atomic(Path(args.predictions_out),
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records))
    if args.json:
        print(json.dumps({"scores": result.scores, "unscored_tasks": result.unscored}, indent=2))
    elif not result.scores:
        print(f"{args.model}: no test task could be scored by {args.evaluator} "
              f"({len(result.unscored)} without answer options).")
    else:
        from ablate.evaluators import evaluator_of

        names = evaluator_of(args.evaluator).metric_names
        print(f"{args.model} ({args.evaluator}, {args.encoding}): " + "  ".join(f"{m} {result.scores[m]:.4f}" for m in names))
        for task, values in result.scores["per_task"].items():
            print(f"  {task:<60} " + "  ".join(f"{m} {values[m]:.2f}" for m in names))
        if result.unscored:
            print(f"  not scored by {args.evaluator}: {', '.join(result.unscored)}")
    return 0


def _evaluator_kinds() -> list[str]:
    """Evaluators `ablate evaluate` runs on a model alone (those that need no cell of a sweep)."""
    from ablate.evaluators import EVALUATORS

    return [kind for kind in EVALUATORS if kind in ("generate", "rank")]


def cmd_synth(args) -> int:
    from ablate.data.synthetic import write_suite

    out = Path(args.out)
    check_output_folder(out, "--out")
    if (out / "tasks").exists() and any((out / "tasks").iterdir()):
        raise AblateError("the folder already holds tasks.", file=str(out), field="--out",
                          fix="choose an empty or new folder.")
    write_suite(out, seed=args.seed, num_instances=args.instances)
    print(f"Wrote the synthetic suite (seed {args.seed}) to {out}: tasks/, splits/default/, tokenizer.json")
    return 0


def cmd_schema(args) -> int:
    from ablate.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def cmd_init(args) -> int:
    from pydantic import ValidationError

    from ablate.files import write_text_atomic
    from ablate.schema import schema_text
    from ablate.spec import NAME_LENGTH, NAME_PATTERN, SweepSpec, format_validation_error
    from ablate.starters import render_starter, starter_spec

    out = Path(args.out)
    check_output_file(out, "--out")  # a folder, a FIFO, a place that cannot be written
    if out.exists() and not args.force:
        raise AblateError("the file already exists, and init does not overwrite a spec.", file=str(out),
                          field="--out", fix="give a new file name, or add --force to replace it.")
    if out.suffix not in (".yaml", ".yml"):
        raise AblateError("a spec file ends in .yaml or .yml.", file=str(out), field="--out",
                          fix=f"name it e.g. {out.with_suffix('.yaml').name}.")
    name = args.name or out.stem
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > NAME_LENGTH:
        raise AblateError(f"'{name}' is not a sweep name (it names the MLflow experiment and a folder: letters, digits, "
                          "_ . - and at most 100 characters, starting with a letter or digit).",
                          field="--name" if args.name else "--out",
                          fix="give --name NAME (e.g. --name my_sweep), or a file name of that form.")
    try:  # a starter that does not validate is ablate's own bug, caught before anything is written
        SweepSpec.model_validate(starter_spec(args.ablation, args.source, name))
    except ValidationError as exc:
        raise format_validation_error(exc, str(out)) from None
    schema_ref = args.schema or "ablate.schema.json"
    text = render_starter(args.ablation, args.source, schema_ref, name)
    if args.schema is None:
        write_text_atomic(out.parent / "ablate.schema.json", schema_text())
    write_text_atomic(out, text)
    print(f"Wrote {out} ({args.ablation} on {args.source})" + ("" if args.schema else
          f" and, beside it, the schema its first line points editors at ({out.parent / 'ablate.schema.json'})")
          + f". Next: ablate validate {out}")
    return 0


@dataclass(frozen=True)
class SweepTarget:
    """What SPEC_OR_EXPERIMENT names: the experiment and its store, the spec when a spec was given
    (its output folder and retry window), else the defaults."""

    experiment: str
    tracking_uri: str
    spec: object | None
    retry_seconds: float


def _sweep_target(target_text: str, tracking_uri: str | None) -> SweepTarget:
    from ablate.spec import load_spec
    from ablate.track.retry import DEFAULT_RETRY_SECONDS
    from ablate.track.uri import resolve_tracking_uri

    target = Path(target_text)
    experiment, uri, spec, retry_seconds = target_text, tracking_uri, None, DEFAULT_RETRY_SECONDS
    if target.suffix in (".yaml", ".yml") or target.is_file():
        spec = load_spec(target)
        experiment = spec.tracking.experiment or spec.name
        uri = uri or spec.tracking.tracking_uri
        retry_seconds = spec.tracking.retry_seconds
    return SweepTarget(experiment, resolve_tracking_uri(uri, Path.cwd()), spec, retry_seconds)


def cmd_report(args) -> int:
    from ablate.analyse.publish import print_report, publish_report
    from ablate.analyse.report import make_report
    from ablate.prepare import REPORT_FOLDER, output_dir_of
    from ablate.results import metric_spec

    target = _sweep_target(args.target, args.tracking_uri)
    if args.out:
        check_output_folder(args.out, "--out")
    if args.metric is not None:
        metric_spec(args.metric)  # an unknown metric: the known ones named
    report = make_report(target.tracking_uri, target.experiment, args.metric, args.aggregate, target.retry_seconds,
                         args.correction)
    # The folder `ablate sweep` writes the report to: the sweep's own, whatever its experiment is called.
    folder = Path(args.out) if args.out else output_dir_of(target.spec, Path.cwd()) / REPORT_FOLDER \
        if target.spec is not None else Path.cwd() / "ablate_runs" / report.sweep / REPORT_FOLDER
    check_output_folder(folder, "--out")
    written = publish_report(report, target.tracking_uri, folder, target.retry_seconds,
                             out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report)
        print("Figures: " + ", ".join(str(p) for p in written)
              + ("" if written.not_logged else " (also in the parent run's report/ artifacts)"))
    return 0


def cmd_compare(args) -> int:
    from ablate.analyse.compare_sweep import compare_text, make_comparison

    from ablate.results import headline_metric, metric_spec

    target = _sweep_target(args.target, args.tracking_uri)
    if args.metric is not None:
        metric_spec(args.metric)  # an unknown metric: the known ones named
    result = make_comparison(target.tracking_uri, target.experiment, args.a, args.b,
                             metric=args.metric or headline_metric(), encoding=args.encoding,
                             retry_seconds=target.retry_seconds)
    print(json.dumps(result.model_dump(mode="json"), indent=2) if args.json else compare_text(result))
    return 0


def cmd_dashboard(args) -> int:
    from ablate.analyse.dashboard import write_dashboard

    check_output_folder(args.out, "--out")
    index = write_dashboard(args.page, args.out, args.tracking_uri)
    print(f"Dashboard written: {index} (open it in a browser; no server needed)")
    return 0


def cmd_ui(args) -> int:
    import socket

    from ablate.track import (
        Store,
        check_tracking_uri,
        resolve_tracking_uri,
        store_exists,
    )

    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    check_tracking_uri(uri)  # seconds, for a server or database that does not answer
    if not store_exists(uri):
        raise AblateError(f"no MLflow store at {uri}.", field="--tracking-uri",
                          fix="run a sweep here first (ablate sweep sweeps/smoke.yaml), or point --tracking-uri at its store.")
    with socket.socket() as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise AblateError(f"cannot serve on {args.host}:{args.port} ({exc.strerror or exc}).", field="--port",
                              fix="choose a free port, e.g. --port 5001.") from None
    url = f"http://{args.host}:{args.port}"
    print(f"MLflow UI for {uri}: {url}  (Ctrl-C to stop)")
    # MLflow's UI opens experiments on its GenAI pages unless the link asks for the training view.
    for name, experiment_id in Store(uri).sweep_experiments():
        print(f"  {name}: {url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    sys.stdout.flush()
    # The mlflow of this environment, whether or not its bin/ folder is on PATH.
    from ablate.processes import supervise

    return supervise([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                      "--host", args.host, "--port", str(args.port)])


def _bounded_int(low: int, high: int | None = None):
    """An argparse type for a whole number in [low, high]: a bad value exits 2 with the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range; give {low} to {high}" if high is not None
                                             else f"{value} is out of range; give {low} or more")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """Flag errors in ablate's own form: one paragraph naming the flag and the fix, exit 2."""

    def error(self, message: str):
        self.exit(2, f"ablate: error: {self.prog}: {redact(message)}. Fix: correct it as said (`{self.prog} --help` "
                     "lists every flag).\n")


def _starter_names() -> list[str]:
    from ablate.starters import STARTERS

    return list(STARTERS)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ablate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sweep = commands.add_parser("sweep", help="run a sweep on Ray Tune, tracked in MLflow")
    _add_spec_arguments(sweep)
    sweep.add_argument("--address", help="Ray cluster address (default: start Ray on this machine)")
    sweep.add_argument("--storage-path", help="where Tune keeps checkpoints: a folder every node mounts or a URI "
                                              "such as s3://bucket/path (sets resources.storage_path)")
    sweep.add_argument("--force", action="store_true", help="re-run cells that already finished")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    sweep.add_argument("--yes", action="store_true",
                       help="go ahead with a sweep over resources.confirm_over_cells / confirm_over_hours")
    sweep.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    sweep.add_argument("--budget", type=int, help="with a refine: block, at most N cells "
                                                  "(the same as --set refine.budget.cells=N)")
    sweep.set_defaults(func=cmd_sweep)

    plan = commands.add_parser("plan", help="list a sweep's cells, their status and a cost estimate")
    _add_spec_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print the plan (cells, statuses, cost) as JSON")
    plan.set_defaults(func=cmd_plan)

    validate = commands.add_parser("validate", help="check a spec (and its data) without running anything")
    _add_spec_arguments(validate)
    validate.set_defaults(func=cmd_validate)

    prompt = commands.add_parser("prompt", help="print the exact Tk-Instruct source of one instance")
    prompt.add_argument("task_json", help="a SuperNI task file (tasks/<task>.json)")
    prompt.add_argument("--encoding", required=True, help="e.g. def+pos2")
    prompt.add_argument("--index", type=_bounded_int(0), required=True, help="instance index (0-based)")
    prompt.add_argument("--json", action="store_true", help="print the source (and its token count) as JSON")
    prompt.add_argument("--max-source-length", type=_bounded_int(1), help="truncate as the official collator (tokens)")
    prompt.add_argument("--tokenizer", help="tokenizer.json or model folder: counts the prompt's tokens (and truncates with --max-source-length)")
    prompt.set_defaults(func=cmd_prompt)

    for name, func, help_text in (("eval", cmd_eval, "score predictions with the official metrics"),
                                  ("baseline", cmd_baseline, "score the copy_demo and copy_input baselines")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--tasks", required=True, help="task directory (tasks/ and splits/)")
        sub.add_argument("--split", default="default", help="splits/<split>/test_tasks.txt names the test tasks")
        sub.add_argument("--instances", type=_bounded_int(1), default=100, help="first N instances per test task")
        sub.add_argument("--json", action="store_true", help="print the scores as JSON")
        if name == "eval":
            sub.add_argument("--predictions", required=True, help='JSONL of {"id", "prediction"}')
        sub.set_defaults(func=func)

    evaluate = commands.add_parser("evaluate", help="score a saved model folder or hf: model with a cell's evaluators")
    evaluate.add_argument("model", help="a folder written by save_pretrained (e.g. a cell's model/ artifact) or hf:<name>")
    evaluate.add_argument("--tasks", required=True, help="task directory (tasks/ and splits/)")
    evaluate.add_argument("--split", default="default", help="splits/<split>/test_tasks.txt names the test tasks")
    evaluate.add_argument("--encoding", default="def", help="test encoding, e.g. def or def+pos2")
    evaluate.add_argument("--evaluator", default="generate", choices=sorted(_evaluator_kinds()),
                          help="generate (official SuperNI metrics) or rank (FLAN's rank classification)")
    evaluate.add_argument("--instances", type=_bounded_int(1), default=100, help="first N instances per test task")
    evaluate.add_argument("--max-source-length", type=_bounded_int(1, 1_048_576), default=1024,
                          help="model tokens of a prompt (cut as Tk-Instruct cuts it)")
    evaluate.add_argument("--max-target-length", type=_bounded_int(1, 1_048_576), default=128,
                          help="model tokens of an answer option")
    evaluate.add_argument("--max-new-tokens", type=_bounded_int(1, 65_536), default=128,
                          help="generated tokens per answer, at most")
    evaluate.add_argument("--batch-size", type=_bounded_int(1, 65_536), default=16, help="test instances per batch")
    evaluate.add_argument("--max-options", type=_bounded_int(2, 100), default=10,
                          help="a task with at most N distinct references is ranked over them")
    evaluate.add_argument("--options-in-prompt", action="store_true", help="FLAN's OPTIONS suffix on the prompts")
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (one this machine has)")
    evaluate.add_argument("--predictions-out", help="JSONL: one record per instance (id, choice, option scores)")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    evaluate.set_defaults(func=cmd_evaluate)

    synth = commands.add_parser("synth", help="write the built-in synthetic task suite")
    synth.add_argument("--out", required=True, help="an empty or new folder (tasks/, splits/default/, tokenizer.json)")
    synth.add_argument("--seed", type=_bounded_int(0, 2**31 - 1), default=0, help="the suite's seed (data.synthetic_seed)")
    synth.add_argument("--instances", type=_bounded_int(1, 1_000_000), default=400, help="instances per task")
    synth.set_defaults(func=cmd_synth)

    report = commands.add_parser("report", help="curves, fits, knees and figures of a finished sweep")
    report.add_argument("target", help="the sweep's spec YAML or its MLflow experiment name")
    report.add_argument("--out", help="folder for the figures and report.json (default: ablate_runs/NAME/report)")
    report.add_argument("--metric", default=None,
                        help="a declared metric (default: the headline of the sweep's first evaluator, e.g. rougeL)")
    report.add_argument("--aggregate", default="clusters", choices=["clusters", "overall"],
                        help="the mean line: the mean of the held-out clusters (FLAN) or the per-instance "
                             "score over every test task (SuperNI's headline number)")
    report.add_argument("--correction", default="holm", choices=["holm", "bh"],
                        help="p-value correction across the sweep's paired comparisons: Holm (family-wise "
                             "error) or Benjamini-Hochberg (false discovery rate)")
    report.add_argument("--tracking-uri", help="default: the spec's, else sqlite:///mlflow.db here")
    report.add_argument("--json", action="store_true", help="print the numbers behind every figure")
    report.set_defaults(func=cmd_report)

    compare = commands.add_parser("compare", help="paired comparison of two cells or settings of a sweep")
    compare.add_argument("target", help="the sweep's spec YAML or its MLflow experiment name")
    compare.add_argument("a", metavar="A", help="a cell id or name, or axis=value[,axis=value] (e.g. train_encoding=def)")
    compare.add_argument("b", metavar="B", help="the setting A is compared with, named the same ways")
    compare.add_argument("--metric", default=None, help="a declared metric (default: rougeL); rank's acc, acc_norm, "
                                                        "ll_correct compare too")
    compare.add_argument("--encoding", help="the test encoding (default: the cells' first)")
    compare.add_argument("--tracking-uri", help="default: the spec's, else sqlite:///mlflow.db here")
    compare.add_argument("--json", action="store_true", help="print the numbers as JSON")
    compare.set_defaults(func=cmd_compare)

    dashboard = commands.add_parser("dashboard", help="render a static HTML page of several sweeps")
    dashboard.add_argument("page", help="dashboard YAML (see dashboards/)")
    dashboard.add_argument("--out", required=True, help="folder for index.html")
    dashboard.add_argument("--tracking-uri", help="default: the page's, else sqlite:///mlflow.db here")
    dashboard.set_defaults(func=cmd_dashboard)

    init = commands.add_parser("init", help="write a commented starting spec for an ablation and a data source")
    init.add_argument("--ablation", required=True, choices=_starter_names(),
                      help="the question the sweep answers (see the docs' which-sweep page)")
    init.add_argument("--source", default="synthetic",
                      help="data.source: synthetic (the built-in suite; tiny settings that run on a laptop CPU), a "
                           "path to a natural-instructions clone or hf:<dataset> (the papers' settings)")
    init.add_argument("--out", required=True, help="the spec file to write (.yaml)")
    init.add_argument("--name", help="the sweep's name (default: the file's name without .yaml)")
    init.add_argument("--schema", help="the JSON Schema path or URL its modeline names (default: write "
                                       "ablate.schema.json beside the spec and name that)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.set_defaults(func=cmd_init)

    schema = commands.add_parser("schema", help="print the spec's JSON Schema (for editors and CI)")
    schema.set_defaults(func=cmd_schema)

    ui = commands.add_parser("ui", help="start the MLflow UI on 127.0.0.1 for the store")
    ui.add_argument("--tracking-uri", help="default: sqlite:///mlflow.db here")
    ui.add_argument("--host", default="127.0.0.1", help="the address the UI listens on (127.0.0.1: this machine only)")
    ui.add_argument("--port", type=_bounded_int(1, 65535), default=5000, help="the port it listens on (a taken port is refused)")
    ui.set_defaults(func=cmd_ui)
    for command in commands.choices.values():
        _refuse_empty_values(command)
    return parser


def _refuse_empty_values(parser: argparse.ArgumentParser) -> None:
    """Every text argument of a command refuses an empty value (`--tracking-uri "$UNSET"`, `--out ""`),
    which would otherwise stand for the default or the working directory without a word."""
    def non_empty(optional: bool):
        def parse(text: str) -> str:
            if not text.strip():
                raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give a value"
                                                 + (", or leave the flag out for its default" if optional else ""))
            return text

        return parse

    for action in parser._actions:
        if isinstance(action, (argparse._StoreAction, argparse._AppendAction)) and action.type is None \
                and action.choices is None:
            action.type = non_empty(bool(action.option_strings))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Ray records the driver's command line as its job's entrypoint (the dashboard, `ray list jobs`):
    # a password given in a flag is read by now, and leaves it out.
    sys.argv[:] = [redact(word) for word in sys.argv]
    try:
        return args.func(args)
    except AblateError as exc:
        if args.debug:
            raise
        print(f"ablate: error: {exc.render()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nablate: interrupted. Finished cells are saved in MLflow; run the same command again to resume.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`ablate plan SPEC | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
