"""The docs are checked like code: the site builds in strict mode (a broken link or anchor fails),
the reference written from the code covers every field, flag, key and registry entry, every YAML
snippet is a spec that validates (or is marked `<!-- fragment -->` on the line before its fence),
every `ablate ...` command line parses, and the JSON Schema matches the spec and the shipped sweeps."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from ablate.cli import build_parser, main
from ablate.errors import AblateError
from ablate.spec import SweepSpec, load_spec

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md")])
FRAGMENT = "<!-- fragment -->"
FENCE = re.compile(r"^(\s*)```(\w*)")


def code_blocks(path: Path) -> list[tuple[int, str, str, bool]]:
    """(line number, language, text, marked as a fragment) of every fenced block of a page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening:
            indent, language, start = opening.group(1), opening.group(2), i
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            fragment = start > 0 and lines[start - 1].strip() == FRAGMENT
            blocks.append((start + 1, language, "\n".join(body), fragment))
        i += 1
    return blocks


def command_lines(text: str) -> list[str]:
    """The `ablate ...` lines of a shell block, continuation lines joined, prompts and `&&`
    chains split, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        for part in re.split(r"&&|;|\|(?!\|)", line):
            part = part.strip().removeprefix("$ ").strip()
            if part.startswith("ablate ") or part == "ablate":
                found.append(part)
    return found


def test_pages_exist_and_readme_is_a_front_page():
    assert len(PAGES) > 20
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250, "the README is the front page; detail goes into docs/"
    # CI runs the README's test command: it must still be there, verbatim.
    assert 'HF_HUB_OFFLINE=1 python -m pytest -q tests' in readme
    assert "pip install torch==2.13.0 && pip install -e . && ablate sweep sweeps/clusters.yaml" in readme


def test_site_builds_in_strict_mode(tmp_path):
    """A broken link, a missing page in the nav or a bad anchor fails the build."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
    for page in ("reference/spec/index.html", "reference/cli/index.html", "reference/results/index.html",
                 "reference/registries/index.html", "spec.schema.json", "how-to/which-sweep/index.html"):
        assert (site / page).is_file(), page
    assert json.loads((site / "spec.schema.json").read_text()) == json.loads((DOCS / "spec.schema.json").read_text())


YAML_BLOCKS = [(path, line, text) for path in PAGES for line, language, text, fragment in code_blocks(path)
               if language in ("yaml", "yml") and not fragment]


@pytest.mark.parametrize("path,line,text", YAML_BLOCKS,
                         ids=[f"{p.relative_to(REPO)}:{n}" for p, n, _ in YAML_BLOCKS])
def test_yaml_snippet_is_a_valid_spec(path, line, text, tmp_path, monkeypatch, capsys):
    """A YAML block not marked as a fragment is a whole spec: `ablate validate` accepts it."""
    spec = tmp_path / "snippet.yaml"
    spec.write_text(text, encoding="utf-8")
    monkeypatch.chdir(REPO)  # shipped paths in snippets (sweeps/lm_eval_tasks) resolve as the docs say
    code = main(["validate", str(spec)])
    assert code == 0, f"{path.relative_to(REPO)}:{line}: {capsys.readouterr().err}"


def test_fragments_are_marked_on_purpose():
    """The marker sits right before a yaml fence (a stray one would hide nothing, and says nothing)."""
    for path in PAGES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip() == FRAGMENT:
                following = lines[i + 1] if i + 1 < len(lines) else ""
                assert FENCE.match(following) and FENCE.match(following).group(2) in ("yaml", "yml"), \
                    f"{path.relative_to(REPO)}:{i + 1}: {FRAGMENT} must be followed by a ```yaml fence"


COMMANDS = [(path, line, command) for path in PAGES for line, language, text, _ in code_blocks(path)
            if language in ("bash", "sh", "console", "shell", "") for command in command_lines(text)]


def test_docs_hold_command_lines():
    assert len(COMMANDS) >= 30
    assert {shlex.split(c)[1] for _, _, c in COMMANDS} >= {"sweep", "report", "compare", "plan", "ui", "init"}


@pytest.mark.parametrize("path,line,command", COMMANDS,
                         ids=[f"{p.relative_to(REPO)}:{n}:{c[:40]}" for p, n, c in COMMANDS])
def test_command_line_parses(path, line, command, capsys):
    """Every `ablate ...` line in the docs is accepted by the current parser (flags, choices, types)."""
    words = shlex.split(command, comments=True)
    parser = build_parser()
    try:
        parser.parse_args(words[1:])
    except SystemExit as exit_:
        if exit_.code != 0:  # --help exits 0
            pytest.fail(f"{path.relative_to(REPO)}:{line}: `{command}` does not parse: {capsys.readouterr().err}")


def test_every_spec_field_has_a_description():
    from ablate.reference import spec_fields

    missing = [doc.path for doc in spec_fields() if not doc.description.strip()]
    assert not missing, f"fields without a description (written once, in the code): {missing}"


def _schema_property_names(schema: dict) -> set[str]:
    names = set()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        names |= {n for n in definition.get("properties", {}) if n != "kind"}
    return names


def test_spec_reference_covers_every_field():
    """Every property of every settings object the JSON Schema knows has its row (a second,
    independent walk of the typed spec)."""
    from ablate.reference import spec_reference
    from ablate.schema import spec_json_schema

    page = spec_reference()
    rows = set(re.findall(r"^\| `([^`]+)` \|", page, flags=re.M))
    last_parts = {re.split(r"[.\]]", row)[-1] for row in rows}
    assert _schema_property_names(spec_json_schema()) <= last_parts
    for path in ("train.lora.r", "stages[dpo].beta", "eval.evaluators[lm_eval].tasks", "refine.goal[best].margin",
                 "refine.budget.cells", "data.instances_per_task"):
        assert path in rows, path
    assert "| `data.instances_per_task` | int | *required*" in page


def test_cli_reference_covers_every_command_and_flag():
    from ablate.reference import cli_reference, commands

    page = cli_reference()
    for name, parser in commands().items():
        assert f"## `ablate {name}`" in page
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"ablate {name} {action.option_strings or action.dest} has no help text"
            for flag in action.option_strings:
                assert f"`{flag}`" in page, f"ablate {name} {flag}"


def test_results_reference_covers_every_key_tag_and_artifact():
    from ablate import results
    from ablate.evaluators import declared_metrics
    from ablate.reference import results_reference

    page = results_reference()
    for entry in results.SCHEMA:
        assert entry.description and f"`{entry.name}`" in page
    for metric in declared_metrics():
        assert f"| `{metric}` |" in page
    declared = {entry.name for entry in results.SCHEMA}
    # Every tag ablate sets is declared (a new one without a description fails here).
    tags = {value for name, value in vars(results).items()
            if name.isupper() and isinstance(value, str) and value.startswith("ablate.")}
    assert tags <= declared, tags - declared


def test_registries_reference_covers_every_entry():
    from ablate.evaluators import EVALUATORS
    from ablate.reference import registries_reference
    from ablate.refine_spec import GOALS
    from ablate.spec import AXIS_KINDS
    from ablate.stages import STAGES

    page = registries_reference()
    entries = [*EVALUATORS, *STAGES, *AXIS_KINDS, *(g.model_fields["kind"].default for g in GOALS)]
    for entry in entries:
        row = re.search(rf"^\| `{re.escape(entry)}` \|(.*)\|\s*$", page, flags=re.M)
        assert row, entry
        assert row.group(1).rsplit("|", 1)[-1].strip(), f"{entry} has no description"


SHIPPED = sorted((REPO / "sweeps").glob("*.yaml"))


def test_committed_schema_is_the_specs_own():
    """docs/spec.schema.json (what the shipped sweeps' modeline names) is `ablate schema`'s output."""
    from ablate.schema import schema_text

    assert (DOCS / "spec.schema.json").read_text(encoding="utf-8") == schema_text(), \
        "run `ablate schema > docs/spec.schema.json`"


def test_ablate_schema_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "ablate sweep spec" and "train" in schema["properties"]
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_sweep_has_the_modeline_and_matches_the_schema(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../docs/spec.schema.json"
    assert (path.parent / first.split("=", 1)[1]).resolve() == (DOCS / "spec.schema.json").resolve()
    validator = jsonschema.Draft202012Validator(json.loads((DOCS / "spec.schema.json").read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors


@pytest.mark.parametrize("mutate,where", [
    (lambda s: s.update(trian=s.pop("train")), "trian"),
    (lambda s: s["train"].update(stpes=s["train"].pop("steps")), "stpes"),
    (lambda s: s["data"].update(instance_per_task=1), "instance_per_task"),
    (lambda s: s.update(stages=["sfft"]), "sfft"),
    (lambda s: s["train"].update(schedule="cosin"), "cosin"),
    (lambda s: s.update(seeds="0"), "'0'"),
])
def test_schema_rejects_misspelt_keys_and_values(mutate, where):
    from ablate.schema import spec_json_schema

    spec = yaml.safe_load((REPO / "sweeps" / "smoke.yaml").read_text())
    mutate(spec)
    errors = list(jsonschema.Draft202012Validator(spec_json_schema()).iter_errors(spec))
    assert errors and any(where in e.message or where in str(list(e.absolute_path)) or where in json.dumps(e.instance)
                          for e in errors), [e.message for e in errors]
    with pytest.raises(AblateError):  # the typed spec refuses it as well
        _load(spec)


def _load(raw: dict) -> None:
    from pydantic import ValidationError

    from ablate.spec import format_validation_error

    try:
        SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise format_validation_error(exc, "spec.yaml") from None
