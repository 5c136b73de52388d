"""The lm_eval evaluator: lm-evaluation-harness on a cell's model in memory, against the `lm_eval`
command line on the same saved model and task folder (tests/fixtures/lm_eval_tasks: a
multiple_choice and a generate_until task over local JSONL files); its keys, its declared
metrics, its report curve, its cost, and a spec refused without the package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate import results
from ablate.analyse.collect import CellRecord, SweepRecords
from ablate.analyse.report import build_report
from ablate.cell import CellPlace, run_cell
from ablate.data.sources import resolve_task_dir, source_fingerprint
from ablate.data.tokenizer import task_dir_tokenizer
from ablate.errors import AblateError
from ablate.estimate import estimate_seconds
from ablate.evaluators.lm_eval import backend_of, flat_metrics
from ablate.model import build_model
from ablate.plan import expand_grid
from ablate.spec import load_spec
from ablate.track.cell_run import CellTracker
from ablate.track.store import Store

TASKS = Path(__file__).parent / "fixtures" / "lm_eval_tasks"
LM_EVAL = {"kind": "lm_eval", "tasks": ["tiny_mc", "tiny_gen"], "include_path": str(TASKS), "batch_size": 4,
           "log_samples": True}


def _spec(model: str, evaluators: list) -> dict:
    return {"name": "lm-eval", "data": {"source": "synthetic", "num_train_tasks": 2, "instances_per_task": 0},
            "model": model,
            "train": {"steps": 0, "batch_size": 4, "learning_rate": 1e-3, "max_source_length": 64,
                      "max_target_length": 8, "encoding": "def"},
            "eval": {"instances_per_task": 2, "max_new_tokens": 4, "encodings": ["def", "def+pos2"],
                     "evaluators": evaluators},
            "seeds": [0]}


def _load(tmp_path: Path, spec: dict):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    loaded = load_spec(path, [], tmp_path)
    return expand_grid(loaded, source_fingerprint(loaded.data.source, loaded.data.synthetic_seed))


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory) -> Path:
    """A tiny llama (the llama-nano preset, seeded) and the synthetic suite's tokenizer, saved locally."""
    cache = tmp_path_factory.mktemp("cache")
    tokenizer, _ = task_dir_tokenizer(resolve_task_dir("synthetic", 0, cache), cache)
    folder = tmp_path_factory.mktemp("llama")
    build_model("llama-nano", len(tokenizer), seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _run_cell(tmp_path: Path, spec: dict):
    cell = _load(tmp_path, spec)[0]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = Store(uri)
    tracker = CellTracker.start(uri, store.ensure_experiment("cell"), "parent", cell_id=cell.id, name=cell.name,
                                sweep="cell", axis_values={}, settings=cell.settings.model_dump(mode="json"),
                                data_fingerprint=cell.settings.data_fingerprint)
    returned = run_cell(cell, CellPlace(cache_dir=tmp_path / "cache"), tracker)
    tracker.finish()
    run = store.client.get_run(tracker.run_id)
    artifacts = Path(store.client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts")))
    return cell, returned, run, artifacts


def _lm_eval_cli(model: Path, out: Path) -> dict:
    """The `lm_eval` command line on the saved model and the same task folder."""
    done = subprocess.run([str(Path(sys.executable).parent / "lm_eval"), "run", "--model", "hf",
                           "--model_args", f"pretrained={model}", "--tasks", "tiny_mc", "tiny_gen",
                           "--include_path", str(TASKS), "--device", "cpu", "--batch_size", "4",
                           "--output_path", str(out), "--log_samples"],
                          check=False, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    [found] = sorted(out.rglob("results_*.json"))
    samples = {p.name.split("_", 1)[1].rsplit("_", 1)[0]: [json.loads(line) for line in p.read_text().splitlines()]
               for p in out.rglob("samples_*.jsonl")}
    return {"results": json.loads(found.read_text()), "samples": samples}


def _strings(value):
    return [_strings(v) for v in value] if isinstance(value, list) else str(value)


@pytest.mark.slow
def test_the_untuned_cell_scores_what_the_lm_eval_command_line_scores(tmp_path, saved_llama):
    cell, returned, run, artifacts = _run_cell(tmp_path, _spec(str(saved_llama), [LM_EVAL]))
    assert cell.settings.untuned
    cli = _lm_eval_cli(saved_llama, tmp_path / "cli")

    # Every number the command line reports, under lm_eval/<task>/<metric>, equal.
    expected = flat_metrics(cli["results"]["results"], None)
    assert set(expected) == {"lm_eval/tiny_mc/acc", "lm_eval/tiny_mc/acc_stderr", "lm_eval/tiny_mc/acc_norm",
                             "lm_eval/tiny_mc/acc_norm_stderr", "lm_eval/tiny_gen/exact_match",
                             "lm_eval/tiny_gen/exact_match_stderr"}
    metrics = run.data.metrics
    assert {k: metrics[k] for k in expected} == expected
    assert {k: returned[k] for k in expected} == expected
    assert metrics[results.LM_EVAL_SECONDS] > 0 and metrics[results.EVAL_SECONDS] >= metrics[results.LM_EVAL_SECONDS]
    # Run once, not once per test encoding: no key carries an encoding.
    assert not [k for k in metrics if "lm_eval" in k and k.split("/")[0] in ("def", "def-pos2")]

    # The per-document records match too: each choice's log-likelihood, each generation.
    for task in ("tiny_mc", "tiny_gen"):
        ours = [json.loads(line) for line in (artifacts / results.lm_eval_samples_artifact(task)).read_text().splitlines()]
        theirs = sorted(cli["samples"][task], key=lambda r: r["doc_id"])
        ours = sorted(ours, key=lambda r: r["doc_id"])
        # (the command line writes each log-likelihood and flag as a string)
        assert [_strings(r["filtered_resps"]) for r in ours] == [_strings(r["filtered_resps"]) for r in theirs]
    # lm-eval's results JSON, with versions and task configs, is a cell artifact.
    saved = json.loads((artifacts / results.LM_EVAL_RESULTS_ARTIFACT).read_text())
    assert saved["results"] == cli["results"]["results"]
    assert saved["versions"] == {"tiny_mc": 1.0, "tiny_gen": 1.0} and saved["lm_eval_version"]
    assert saved["configs"]["tiny_mc"]["output_type"] == "multiple_choice"


@pytest.mark.slow
def test_an_encoder_decoder_preset_is_scored_with_the_seq2seq_backend(tmp_path):
    spec = _spec("t5-nano", [{**LM_EVAL, "tasks": ["tiny_mc"], "metrics": ["acc"]}])
    _, _, run, artifacts = _run_cell(tmp_path, spec)
    lm_keys = {k for k in run.data.metrics if k.startswith("lm_eval/")}
    assert lm_keys == {"lm_eval/tiny_mc/acc", "lm_eval/tiny_mc/acc_stderr"}  # acc_norm not kept
    assert 0.0 <= run.data.metrics["lm_eval/tiny_mc/acc"] <= 1.0
    # lm-eval scored the cell's own model, in memory: the same parameters.
    saved = json.loads((artifacts / results.LM_EVAL_RESULTS_ARTIFACT).read_text())
    assert saved["config"]["model_num_parameters"] == run.data.metrics[results.NUM_PARAMETERS]
    assert backend_of(build_model("t5-nano", 64, seed=0)) == "seq2seq"
    assert backend_of(build_model("llama-nano", 64, seed=0)) == "causal"


def test_lm_eval_keys_read_back_and_are_declared():
    key = results.lm_eval_key("mmlu_abstract_algebra", "acc")
    assert key == "lm_eval/mmlu_abstract_algebra/acc"
    assert results.parse_lm_eval_key(key) == ("mmlu_abstract_algebra", "acc")
    assert results.parse_lm_eval_key(results.lm_eval_key("gsm8k", "exact_match", "strict-match")) == (
        "gsm8k", "exact_match.strict-match")
    assert results.parse_metric_key(key) is None  # not a SuperNI key: no encoding
    assert results.is_metric(key) and not results.is_metric("lm_eval/mmlu")
    spec = results.metric_spec(key)
    assert spec.name == key and spec.high == 1.0 and spec.higher_is_better
    assert not results.metric_spec("lm_eval/mmlu/acc_stderr").higher_is_better
    assert results.metric_spec("lm_eval/wikitext/word_perplexity").higher_is_better is False
    with pytest.raises(AblateError):
        results.metric_spec("lm_eval")


def test_flat_metrics_keep_the_asked_metrics_and_their_stderr_and_name_filters():
    lm_results = {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1,
                            "exact_match,flexible-extract": 0.5, "exact_match_stderr,flexible-extract": "N/A"},
                  "arc_easy": {"acc,none": 0.4, "acc_stderr,none": 0.05, "acc_norm,none": 0.45, "sample_len": 10}}
    assert flat_metrics(lm_results, None) == {
        "lm_eval/gsm8k/exact_match.strict-match": 0.25, "lm_eval/gsm8k/exact_match_stderr.strict-match": 0.1,
        "lm_eval/gsm8k/exact_match.flexible-extract": 0.5, "lm_eval/arc_easy/acc": 0.4,
        "lm_eval/arc_easy/acc_stderr": 0.05, "lm_eval/arc_easy/acc_norm": 0.45}
    assert flat_metrics(lm_results, ["acc"]) == {"lm_eval/arc_easy/acc": 0.4, "lm_eval/arc_easy/acc_stderr": 0.05}


def test_the_report_draws_an_lm_eval_metric_as_a_curve(tmp_path):
    spec = _spec("llama-nano", [LM_EVAL])
    spec["data"]["instances_per_task"] = 8
    spec["axes"] = {"train.steps": [10, 20, 40]}
    spec["seeds"] = [0, 1]
    cells = _load(tmp_path, spec)
    key = results.lm_eval_key("tiny_mc", "acc")
    records = [CellRecord(c, "done", {key: 0.2 + c.settings.train.steps / 100 + c.settings.seed / 100,
                                      "def/rougeL": 5.0}) for c in cells]
    report = build_report(SweepRecords("lm-eval", "1", "parent", "sqlite:///x.db", records, {}), key)
    assert report.metric == key and set(report.curves.lines) == {"mean"}
    points = report.curves.lines["mean"].points
    assert [p.x for p in points] == [10.0, 20.0, 40.0] and [p.n for p in points] == [2, 2, 2]
    assert points[0].mean == pytest.approx(0.305) and points[2].mean == pytest.approx(0.605)
    # The report's default metric of a sweep whose first evaluator is lm_eval is its first task's acc.
    assert results.headline_metric(cells) == "lm_eval/tiny_mc/acc"


def test_the_cost_estimate_counts_the_evaluator(tmp_path):
    plain = _load(tmp_path, _spec("llama-nano", ["generate"]))[0]
    small = _load(tmp_path, _spec("llama-nano", ["generate", {**LM_EVAL, "limit": 10}]))[0]
    full = _load(tmp_path, _spec("llama-nano", ["generate", {**LM_EVAL, "tasks": ["mmlu"], "include_path": None}]))[0]
    assert estimate_seconds(plain) < estimate_seconds(small) < estimate_seconds(full)


def test_a_relative_include_path_is_read_against_the_working_directory(tmp_path):
    (tmp_path / "tasks").mkdir()
    spec = _spec("llama-nano", [{**LM_EVAL, "include_path": "tasks"}])
    [cell] = _load(tmp_path, spec)
    assert cell.settings.eval.evaluators[0].include_path == str((tmp_path / "tasks").resolve())


def _validate(tmp_path: Path, spec: dict, hide_lm_eval: bool = False) -> subprocess.CompletedProcess:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    hide = "sys.modules['lm_eval'] = None; " if hide_lm_eval else ""
    code = f"import sys; {hide}from ablate.cli import main; sys.exit(main(['validate', {str(path)!r}]))"
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def test_without_lm_eval_installed_the_spec_is_refused_with_the_install_command(tmp_path):
    done = _validate(tmp_path, _spec("llama-nano", [LM_EVAL]), hide_lm_eval=True)
    assert done.returncode == 2, done.stderr
    assert 'pip install -e ".[lm-eval]"' in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ablate_runs").exists()  # nothing written


def test_validate_refuses_a_baseline_and_an_unknown_local_task(tmp_path):
    spec = _spec("copy_demo", [{**LM_EVAL, "tasks": ["tiny_mc"]}])
    done = _validate(tmp_path, spec)
    assert done.returncode == 2 and "heuristic baseline" in done.stderr and "Traceback" not in done.stderr
    ok = _validate(tmp_path, _spec("llama-nano", [LM_EVAL]))
    assert ok.returncode == 0, ok.stderr


@pytest.mark.slow
def test_validate_names_the_closest_lm_eval_task(tmp_path):
    done = _validate(tmp_path, _spec("llama-nano", [{**LM_EVAL, "tasks": ["tiny_mc", "truthfulqa_mc3"]}]))
    assert done.returncode == 2 and "unknown lm-eval task 'truthfulqa_mc3'" in done.stderr
    assert "'truthfulqa_mc2'" in done.stderr and "Traceback" not in done.stderr


def test_the_cell_id_holds_what_the_task_folder_holds_not_where_it_is(tmp_path):
    import shutil

    ids = []
    for place in ("a", "b"):
        shutil.copytree(TASKS, tmp_path / place / "tasks")
        spec = _spec("llama-nano", [{**LM_EVAL, "include_path": "tasks"}])
        ids.append(_load(tmp_path / place, spec)[0].id)
    assert ids[0] == ids[1]
    (tmp_path / "b" / "tasks" / "data" / "tiny_mc.jsonl").write_text('{"input": "cat", "choices": ["a"], "label": 0}\n')
    assert _load(tmp_path / "b", _spec("llama-nano", [{**LM_EVAL, "include_path": "tasks"}]))[0].id != ids[0]
