"""The docs' reference pages, written from the code so they cannot drift (docs/gen_reference.py
runs these at `mkdocs build`; tests/test_docs.py checks they cover everything).

    spec_reference()        every spec field: path, type, default, description, cell identity
    cli_reference()         every command and flag, from the parser
    results_reference()     every metric key, tag and artifact, from the results schema
    registries_reference()  every evaluator, stage, axis kind and refinement goal, from their registries
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class FieldDoc:
    """One settings field: where it sits in a spec and what it takes."""

    path: str  # e.g. train.lora.r, or stages[dpo].beta for a field of one kind of a list entry
    type: str
    default: str | None  # None: required
    description: str
    identity: str  # "always", "never" or "unless_default" (ablate.typed)


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field can hold (its own type, the members of a union, a list's items)."""
    annotation = _strip_annotated(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        for model in _models_in(arg):
            if model not in found:
                found.append(model)
    return found


def type_name(annotation: Any) -> str:
    """A field's type as a reader writes it: `int | null`, `list[str]`, `one of: a, b`."""
    annotation = _strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(dict.fromkeys(type_name(a) for a in typing.get_args(annotation)))
    if origin in (list, tuple):
        return f"list[{', '.join(type_name(a) for a in typing.get_args(annotation))}]"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"mapping[{type_name(key)}, {type_name(value)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: Any) -> str | None:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return None
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "(its fields' defaults)"
    if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        return "[" + ", ".join(getattr(v, "kind", "?") for v in value) + "]"
    return json.dumps(value)


def _kind_of(model: type[BaseModel]) -> str | None:
    info = model.model_fields.get("kind")
    return info.default if info is not None and isinstance(info.default, str) else None


def settings_fields(model: type[BaseModel], prefix: str = "") -> list[FieldDoc]:
    """Every field of a settings model, depth first: a block's own fields follow it; a list of
    tagged settings (stages, evaluators) and a union of kinds (refine goals) list each kind's."""
    docs: list[FieldDoc] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        docs.append(FieldDoc(path, type_name(info.annotation), _default(info), info.description or "",
                             str(extra.get("identity", "always"))))
        inner = _models_in(info.annotation)
        if len(inner) == 1 and _kind_of(inner[0]) is None:
            docs += settings_fields(inner[0], f"{path}.")
        else:
            for kind_model in inner:
                kind = _kind_of(kind_model)
                docs += [d for d in settings_fields(kind_model, f"{path}[{kind}].") if not d.path.endswith("].kind")]
    return docs


def spec_fields() -> list[FieldDoc]:
    """Every spec field; a section a cell's settings do not hold (name, resources, tracking) is
    never part of a cell's id, and the axes and seeds are, through the values they give each cell."""
    from dataclasses import replace

    from ablate.plan import SECTIONS
    from ablate.spec import SweepSpec

    def identity(doc: FieldDoc) -> FieldDoc:
        section = doc.path.split(".")[0].split("[")[0]
        if section in ("axes", "seeds"):
            return replace(doc, identity="through each cell's values")
        return doc if section in SECTIONS else replace(doc, identity="never")

    return [identity(doc) for doc in settings_fields(SweepSpec)]


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, and angle brackets outside code spans (a
    placeholder such as hf:<name> is not an HTML tag)."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def spec_reference() -> str:
    from ablate.spec import SweepSpec

    required = [d.path for d in spec_fields() if d.default is None and "." not in d.path and "[" not in d.path]
    lines = ["# Spec fields", "",
             "Every field of a sweep spec, written from the typed spec (`ablate/spec.py` and the settings of "
             "each stage, evaluator and refinement goal). A field without a default is required. "
             f"At the top level: {', '.join(f'`{r}`' for r in required)}.", "",
             "**Identity** says whether a field is part of a cell's id: *always*; *unless default* (added after "
             "cells were cached: only a value other than the default changes the id); *never* (how often to log, "
             "where to store, how many cells at once); *through each cell's values* (axes and seeds: each "
             "cell's own value is part of its settings). See [cell identity](../concepts/identity.md). "
             "A path like `stages[dpo].beta` is a field of the entries of that kind. "
             "The same fields as a JSON Schema: [schema](schema.md).", ""]
    current = None
    for doc in spec_fields():
        section = doc.path.split(".")[0].split("[")[0]
        if section != current:
            current = section
            description = SweepSpec.model_fields[section].description or ""
            lines += ["", f"## `{section}`", "", _cell(description), "",
                      "| field | type | default | identity | description |", "|---|---|---|---|---|"]
        default = "*required*" if doc.default is None else f"`{_cell(doc.default)}`"
        lines.append(f"| `{doc.path}` | {_cell(doc.type)} | {default} | {doc.identity.replace('_', ' ')} | "
                     f"{_cell(doc.description)} |")
    return "\n".join(lines) + "\n"


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def commands() -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser, by name, in the parser's order."""
    from ablate.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def command_help() -> dict[str, str]:
    from ablate.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help or "" for choice in sub._choices_actions}


def cli_reference() -> str:
    helps = command_help()
    lines = ["# Commands", "",
             "Every `ablate` command and flag, written from the command line's parser (`ablate/cli.py`). "
             "Every command also takes `--debug` before its name (`ablate --debug sweep ...`): tracebacks "
             "instead of the one-paragraph error. Bad input exits 2.", ""]
    for name, parser in commands().items():
        lines += [f"## `ablate {name}`", "", helps.get(name, ""), "", "```text",
                  parser.format_usage().strip().removeprefix("usage: "), "```", ""]
        if _actions(parser):
            lines += ["| argument | default | description |", "|---|---|---|"]
        for action in _actions(parser):
            names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
            default = "" if action.default in (None, False, argparse.SUPPRESS) or action.required \
                else f"`{action.default}`"
            if action.required and action.option_strings:
                default = "*required*"
            choices = f" (one of: {', '.join(map(str, action.choices))})" if action.choices else ""
            lines.append(f"| {names} | {default} | {_cell((action.help or '') + choices)} |")
        lines.append("")
    return "\n".join(lines)


def results_reference() -> str:
    from ablate.evaluators import EVALUATORS
    from ablate.results import SCHEMA

    lines = ["# Metric keys, tags and artifacts", "",
             "Everything ablate writes to MLflow, written from the results schema (`ablate/results.py`) and "
             "the evaluators' metric declarations. `<placeholders>` are filled per run: `<enc>` is a test "
             "encoding with `-` for `+` (`def-pos2`); names from task data (tasks, categories, clusters) are "
             "escaped to valid keys and listed back in each cell's `names.json`.", "",
             "## Evaluation metrics", "",
             "A cell logs each metric of each evaluator per test encoding: overall as `<enc>/<metric>`, and per "
             "group as `<enc>/task/<task>/<metric>`, `<enc>/category/<category>/<metric>` (with "
             "`<enc>/category/<category>/headline`, the category's official headline metric) and "
             "`<enc>/cluster/<cluster>/<metric>`.", "",
             "| metric | evaluator | range | better | per instance | description |", "|---|---|---|---|---|---|"]
    for evaluator in EVALUATORS.values():
        for metric in evaluator.metrics:
            high = "inf" if metric.high is None else f"{metric.high:g}"
            low = "-inf" if metric.low is None else f"{metric.low:g}"
            lines.append(f"| `{metric.name}` | {evaluator.kind} | [{low}, {high}] | "
                         f"{'higher' if metric.higher_is_better else 'lower'} | {metric.per_instance} | "
                         f"{_cell(metric.description)} |")
        if evaluator.key_prefix:
            lines.append(f"| `{evaluator.key_prefix}/<task>/<metric>` | {evaluator.kind} | its task's | its "
                         "task's | | the evaluator's own keys, one per task and metric, whatever the encoding |")
    titles = {"metric": "Other metrics", "param": "Params", "tag": "Tags", "artifact": "Artifacts"}
    for kind, title in titles.items():
        lines += ["", f"## {title}", "", "| name | run | description |", "|---|---|---|"]
        for entry in SCHEMA:
            if entry.kind == kind:
                lines.append(f"| `{entry.name}` | {entry.run} | {_cell(entry.description)} |")
    return "\n".join(lines) + "\n"


def _doc(obj: Any) -> str:
    return " ".join((obj.__doc__ or "").split())


def registries_reference() -> str:
    from ablate.evaluators import EVALUATORS
    from ablate.refine_spec import GOALS
    from ablate.spec import AXIS_KINDS
    from ablate.stages import STAGES

    lines = ["# Evaluators, stages and axis kinds", "",
             "Written from the registries (`ablate/evaluators/`, `ablate/stages/`, `AXIS_KINDS` in "
             "`ablate/spec.py`, the goals in `ablate/refine_spec.py`). Each entry's settings are on the "
             "[spec fields](spec.md) page; its metrics on [metric keys](results.md).", "",
             "## Evaluators (`eval.evaluators`)", "", "| kind | metrics | headline | description |", "|---|---|---|---|"]
    for evaluator in EVALUATORS.values():
        metrics = ", ".join(f"`{m}`" for m in evaluator.metric_names) or f"`{evaluator.key_prefix}/<task>/<metric>`"
        headline = f"`{evaluator.headline}`" if evaluator.headline else "per task (`metrics`)"
        lines.append(f"| `{evaluator.kind}` | {metrics} | {headline} | {_cell(_doc(evaluator.config))} |")
    lines += ["", "## Stages (`stages`)", "", "| kind | settings | description |", "|---|---|---|"]
    for stage in STAGES.values():
        settings = ", ".join(f"`{f}`" for f in stage.config.model_fields if f != "kind") or "`train`"
        lines.append(f"| `{stage.kind}` | {settings} | {_cell(_doc(stage.config))} |")
    lines += ["", "## Axis kinds (`axes`)", "",
              "A named axis below, or any dotted path to a scalar setting (`train.learning_rate`) or a block "
              "(`train.lora`), or `stages.<kind>.<field>`.", "",
              "| axis | sets | description |", "|---|---|---|"]
    for name, axis in AXIS_KINDS.items():
        lines.append(f"| `{name}` | `{axis.path}` | {_cell(axis.description)} |")
    lines += ["", "## Refinement goals (`refine.goal`)", "", "| kind | description |", "|---|---|"]
    for goal in GOALS:
        lines.append(f"| `{_kind_of(goal)}` | {_cell(_doc(goal))} |")
    return "\n".join(lines) + "\n"


def schema_reference() -> str:
    return ("# JSON Schema\n\nThe sweep spec's JSON Schema, made from the typed spec: "
            "[spec.schema.json](../spec.schema.json) (also printed by `ablate schema`). Editors that run the "
            "YAML language server (VS Code's YAML extension, Neovim, JetBrains) complete and check a spec whose "
            "first line names it:\n\n<!-- fragment -->\n```yaml\n# yaml-language-server: $schema=../docs/spec.schema.json\n```\n\n"
            "Every shipped sweep starts with that line; `ablate init` writes it with the schema beside the "
            "spec. The schema checks each field's type, range and spelling; what needs the whole spec or the "
            "data (axis values, clusters, tokenizers, GPUs) is checked by `ablate validate`.\n")
