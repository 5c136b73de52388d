"""`ablate init`: each starter is a commented spec that validates, asks the question of the shipped
sweep it names (the same axes), points editors at the schema, and never overwrites a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ablate.cli import main
from ablate.spec import load_spec
from ablate.starters import STARTERS, render_starter, starter_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ablation", list(STARTERS))
def test_starter_on_the_builtin_suite_validates_and_matches_its_sweep(ablation, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--ablation", ablation, "--out", "my.yaml"]) == 0
    text = (tmp_path / "my.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=ablate.schema.json"
    assert json.loads((tmp_path / "ablate.schema.json").read_text())["title"] == "ablate sweep spec"
    assert "# nested seeded sample of training instances per task" in text  # descriptions from the typed spec
    assert main(["validate", "my.yaml"]) == 0, capsys.readouterr().err
    spec = load_spec(tmp_path / "my.yaml")
    assert spec.name == "my"
    shipped = load_spec(REPO / "sweeps" / f"{STARTERS[ablation].sweep}.yaml")
    assert spec.axes == shipped.axes or ablation == "preference"  # the shipped one adds a third arm (sft_mix)
    assert set(spec.axes) == set(shipped.axes)
    assert spec.model == shipped.model and spec.seeds == shipped.seeds


@pytest.mark.parametrize("source", ["/data/natural-instructions", "hf:allenai/super-natural-instructions"])
def test_starter_on_real_data_takes_the_papers_settings(source):
    raw = starter_spec("clusters", source)
    assert raw["data"]["source"] == source and raw["model"].startswith("hf:")
    assert raw["train"]["max_source_length"] == 1024 and raw["train"]["encoding"] == "def+pos2"
    text = render_starter("clusters", source, "https://example.org/spec.schema.json")
    parsed = yaml.safe_load(text)
    assert parsed == raw  # the comments add nothing a parser sees
    assert text.startswith("# yaml-language-server: $schema=https://example.org/spec.schema.json\n")


def test_init_never_overwrites_and_refuses_bad_names(tmp_path, capsys):
    target = tmp_path / "mine.yaml"
    target.write_text("name: keep\n")
    assert main(["init", "--ablation", "num_tasks", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "mine.yaml" in err and "--force" in err and "Traceback" not in err
    assert target.read_text() == "name: keep\n" and not (tmp_path / "ablate.schema.json").exists()
    assert main(["init", "--ablation", "num_tasks", "--out", str(tmp_path / "mine.txt")]) == 2
    assert ".yaml" in capsys.readouterr().err
    assert main(["init", "--ablation", "num_tasks", "--out", str(target), "--force",
                 "--schema", "../docs/spec.schema.json"]) == 0
    assert target.read_text().startswith("# yaml-language-server: $schema=../docs/spec.schema.json")
    assert not (tmp_path / "ablate.schema.json").exists()  # named, so not written


def test_init_refuses_a_file_name_that_is_no_sweep_name_and_takes_name(tmp_path, capsys):
    out = tmp_path / "my spec(1).yaml"
    assert main(["init", "--ablation", "clusters", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--name" in err and "'my spec(1)' is not a sweep name" in err and not out.exists()
    assert main(["init", "--ablation", "clusters", "--out", str(out), "--name", "my_spec"]) == 0
    assert load_spec(out).name == "my_spec"


def test_init_unknown_ablation_lists_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["init", "--ablation", "num_task", "--out", "x.yaml"])
    assert exit_.value.code == 2
    assert "num_tasks" in capsys.readouterr().err
