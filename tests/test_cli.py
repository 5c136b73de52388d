"""The data-layer commands through the real `ablate` entry point."""

import json

from tests.conftest import ablate_cli


def test_prompt_prints_exact_source_and_json(fixture_tasks):
    task_file = str(fixture_tasks / "tasks" / "task901_edge_no_final_punct.json")
    text = ablate_cli("prompt", task_file, "--encoding", "def", "--index", "1")
    assert text.returncode == 0, text.stderr
    assert text.stdout == ("Definition: Given a sentence about weather, say whether it mentions rain.\n\n"
                           "Now complete the following example -\nInput: Line one\nLine two with snow.\nOutput: \n")
    as_json = json.loads(ablate_cli("prompt", task_file, "--encoding", "def+pos2", "--index", "0", "--json").stdout)
    assert as_json["task"] == "task901_edge_no_final_punct" and as_json["id"] == "task901-1"
    assert as_json["references"] == ["yes", "Yes."] and as_json["source"].endswith("Output: ")
    assert as_json["source_tokens"] is None  # no tokenizer named


def test_prompt_counts_tokens_with_the_tokenizer_named_even_without_a_limit(fixture_tasks, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = Tokenizer(models.WordLevel({"[UNK]": 0, "Output": 1}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    words.save(str(tmp_path / "tokenizer.json"))
    task_file = str(fixture_tasks / "tasks" / "task901_edge_no_final_punct.json")
    as_json = json.loads(ablate_cli("prompt", task_file, "--encoding", "def", "--index", "1", "--json",
                                    "--tokenizer", str(tmp_path / "tokenizer.json")).stdout)
    assert as_json["source_tokens"] == len(as_json["source"].split())  # one id per whitespace-separated word
    text = ablate_cli("prompt", task_file, "--encoding", "def", "--index", "1", "--tokenizer", str(tmp_path / "tokenizer.json"))
    assert text.stdout == as_json["source"] + "\n" and f"{as_json['source_tokens']} tokens" in text.stderr
    (tmp_path / "bad.json").write_text('{"a":')
    bad = ablate_cli("prompt", task_file, "--encoding", "def", "--index", "1", "--tokenizer", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "is not a tokenizer file" in bad.stderr and "Traceback" not in bad.stderr


def test_prompt_errors_exit_2_without_traceback(fixture_tasks):
    task_file = str(fixture_tasks / "tasks" / "task901_edge_no_final_punct.json")
    bad = ablate_cli("prompt", task_file, "--encoding", "def+pos2+nope", "--index", "0")
    assert bad.returncode == 2 and "unknown element 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    out_of_range = ablate_cli("prompt", task_file, "--encoding", "def", "--index", "7")
    assert out_of_range.returncode == 2 and "--index" in out_of_range.stderr


def test_eval_scores_predictions_and_rejects_missing_or_unknown_ids(fixture_tasks, tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    lines = [{"id": "task901-1", "prediction": "Yes"}, {"id": "task901-2", "prediction": "yes"},
             {"id": "task901-3", "prediction": "yes"}, {"id": "task902-1", "prediction": "rivers reaching the sea"},
             {"id": "task902-2", "prediction": ""}]
    predictions.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = ablate_cli("eval", "--tasks", str(fixture_tasks), "--predictions", str(predictions), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["per_task"]["task901_edge_no_final_punct"]["exact_match"] == 66.6667
    # "rivers reaching the sea" vs "Rivers reach sea": stems river/reach/sea, LCS 3 of 4 and 3 -> F 6/7.
    assert scores["per_task"]["task902_edge_missing_explanations"]["rougeL"] == round(100 * (6 / 7) / 2, 4)
    assert scores["exact_match"] == 40.0
    assert set(scores["per_category"]) == {"textual_entailment", "title_generation"}

    predictions.write_text("\n".join(json.dumps(line) for line in lines[:-1] + [{"id": "bogus", "prediction": ""}]))
    bad = ablate_cli("eval", "--tasks", str(fixture_tasks), "--predictions", str(predictions))
    assert bad.returncode == 2 and "task902-2" in bad.stderr and "bogus" in bad.stderr


def test_baseline_scores_both_heuristics(fixture_tasks):
    result = ablate_cli("baseline", "--tasks", str(fixture_tasks), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores) == {"copy_demo", "copy_input"}
    # copy_demo answers "yes" (task901: 2 of 3 right) and "Cat sleeps" (task902: 0 of 2).
    assert scores["copy_demo"]["per_task"]["task901_edge_no_final_punct"]["exact_match"] == 66.6667
    assert scores["copy_demo"]["exact_match"] == 40.0
    assert scores["copy_input"]["exact_match"] == 0.0


def test_synth_writes_a_loadable_suite_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "suite"
    result = ablate_cli("synth", "--out", str(out), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert (out / "tokenizer.json").is_file() and (out / "splits" / "default" / "test_tasks.txt").is_file()
    baseline = ablate_cli("baseline", "--tasks", str(out), "--json")
    assert json.loads(baseline.stdout)["copy_demo"]["exact_match"] > 0
    again = ablate_cli("synth", "--out", str(out))
    assert again.returncode == 2 and "already holds tasks" in again.stderr


def test_help_lists_exactly_the_real_subcommands():
    import argparse
    import re

    from ablate.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    result = ablate_cli("--help")
    assert result.returncode == 0
    documented = set(re.findall(r"^    ablate (\w+)", result.stdout, flags=re.M))
    listed = set(re.findall(r"^    (\w+)\s{2,}", result.stdout, flags=re.M))
    assert listed == set(commands), "argparse lists every subcommand"
    assert documented <= set(commands), f"the usage text names commands that do not exist: {documented - set(commands)}"
    for usage_line in re.findall(r"^    ablate ([\w |]+?)\s{2,}", result.stdout, flags=re.M):
        for name in re.split(r"\s*\|\s*|\s+", usage_line.strip()):
            if name and not name.startswith("sweeps/"):
                assert name in commands, name
