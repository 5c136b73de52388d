"""Reading user files, in one place: every OS, decoding and parsing error becomes one AblateError
that names the path and the fix (a missing file, a folder, a dangling symlink or a symlink loop,
no permission, invalid UTF-8, JSON nested too deep, duplicate YAML keys, a YAML alias bomb).
And the one check of a folder we are about to write into (`check_output_folder`)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from ablate.errors import AblateError

MAX_YAML_ALIASES = 100  # a spec needs few or none; "billion laughs" needs thousands


def read_text(path: str | Path, what: str, fix: str, field: str | None = None) -> str:
    """The UTF-8 text of a file; `what` names it in the message ("the spec", "the task file")."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except IsADirectoryError:
        reason = "it is a folder, not a file"
    except FileNotFoundError:
        reason = "it is a symlink to nothing" if path.is_symlink() else "it does not exist"
    except PermissionError:
        reason = "permission denied"
    except UnicodeDecodeError as exc:
        reason = f"it is not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    raise AblateError(f"cannot read {what}: {reason}.", file=str(path), field=field, fix=fix)


def read_json(path: str | Path, what: str, fix: str) -> Any:
    text = read_text(path, what, fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AblateError(f"invalid JSON: {exc.msg}.", file=str(path), field=f"line {exc.lineno} column {exc.colno}",
                          fix=fix) from None
    except RecursionError:
        raise AblateError("the JSON is nested too deeply to read.", file=str(path), fix=fix) from None


class _StrictLoader(getattr(__import__("yaml"), "CSafeLoader", None) or __import__("yaml").SafeLoader):
    """YAML's safe loader, refusing duplicate keys (YAML would keep the last one silently)."""


def _mapping_without_duplicates(loader, node, deep=False):
    import yaml

    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _register() -> None:
    import yaml

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml(path: str | Path, what: str, fix: str) -> Any:
    """A YAML file as data: safe types only, no duplicate keys, at most MAX_YAML_ALIASES aliases."""
    import yaml

    text = read_text(path, what, fix)
    try:
        aliases = sum(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader))
        if aliases > MAX_YAML_ALIASES:
            raise AblateError(f"the YAML uses {aliases} aliases (at most {MAX_YAML_ALIASES}).", file=str(path),
                              fix="write the values out instead of expanding anchors.")
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a safe loader with one more check
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AblateError(f"YAML syntax error{where}: {problem}.", file=str(path),
                          fix="repair the YAML (indentation, colons, quotes, each key once).") from None
    except RecursionError:
        raise AblateError("the YAML is nested too deeply to read.", file=str(path), fix=fix) from None


_register()


def check_output_folder(out: str | Path, field: str) -> None:
    """A folder we will write into must be one we can create or write: checked before anything
    starts, so a bad `--out` fails with a message and leaves nothing half-written."""
    out = Path(out)
    existing = next((p for p in (out, *out.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        raise AblateError(f"'{existing}' is {'a broken symlink' if not existing.exists() else 'a file'}, so the "
                          f"folder '{out}' cannot be made.", field=field, fix=f"give {field} a folder path (new or existing).")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise AblateError(f"'{existing}' is not writable, so the folder '{out}' cannot be made.", field=field,
                          fix=f"give {field} a folder you can write.")


def write_json(path: Path, payload) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    write_text_atomic(path, json.dumps(payload, indent=2))


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(path.suffix + ".tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(path)
