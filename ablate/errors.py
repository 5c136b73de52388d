"""User-facing errors: one paragraph naming the file, the field and the fix; exit code 2."""

from __future__ import annotations

from ablate.credentials import redact


class AblateError(Exception):
    """Bad input from the user. The CLI prints it without a traceback and exits with code 2."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 fix: str | None = None) -> None:
        self.message = message
        self.file = file
        self.field = field
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """One paragraph; a list of problems (a message of several lines, each item with its own
        "To fix: ...") gets its closing "Fix:" on a line of its own, not after the last item's.
        A password or token in a URI it quotes is shown as *** (ablate.credentials)."""
        text = self._located()
        separator = "\n" if "\n" in text else " "
        return redact(f"{text}{separator}Fix: {self.fix}" if self.fix else text)

    def as_item(self) -> str:
        """One line of a list of problems that ends with one "Fix:" of its own: this problem's fix
        is part of the line ("to fix: ..."), never a second "Fix:"."""
        text = self._located()
        return f"{text} To fix: {self.fix}" if self.fix else text

    def _located(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.field:
            where.append(f"field '{self.field}'")
        return ": ".join([", ".join(where), self.message]) if where else self.message


def did_you_mean(name: str, options: list[str] | tuple[str, ...] | set[str]) -> str:
    """'Did you mean X? Available: a, b, c.' for an unknown name."""
    import difflib

    options = sorted(options)
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    return f"{hint}Available: {', '.join(options)}."


# -- one way to shorten error text, one way to list problems -------------------------------
MAX_ERROR_LENGTH = 5000  # an error kept in an MLflow tag (tags hold at most 8,000 characters)
SHORT_ERROR_LENGTH = 300  # an error shown on one line (a progress line, a summary, a message)


def error_text(exc: BaseException, limit: int = MAX_ERROR_LENGTH) -> str:
    """`Type: message` of an exception, cut to `limit` characters."""
    return f"{type(exc).__name__}: {exc}"[:limit]


def first_line(text: str | BaseException, limit: int = SHORT_ERROR_LENGTH) -> str:
    """The first non-empty line of a message (an exception's, else its type name), cut to `limit`."""
    fallback = type(text).__name__ if isinstance(text, BaseException) else ""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return (lines[0] if lines else fallback)[:limit]


def last_line(text: str, limit: int = SHORT_ERROR_LENGTH) -> str:
    """The last non-empty line of a text: the line of a traceback that names the exception."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "failed")[:limit]


def problem_list(problems: list[str], *, what: str, file: str | None, fix: str) -> AblateError:
    """Every problem at once, one per line, then one Fix."""
    listing = "\n".join(f"- {p}" for p in problems)
    return AblateError(f"{len(problems)} problem(s) {what}:\n{listing}", file=file, fix=fix)


def validation_problems(exc, root=None, prefix: str = "") -> list[str]:
    """One line per pydantic error: the field's dotted path, what is wrong, and for an unknown key
    the keys that exist there ("Did you mean ...?"). `root` is the pydantic model validated.

    A field that takes one of several types (a list or a {low, high} block) is one field to the
    user: pydantic's names of the union's members (`list[any]`, `function-after[...]`) are left
    out of the path; the members' type errors at the field are said as one line ("a valid list,
    or a valid dictionary"), and are left out where a member's own field is what is wrong."""
    entries = []  # (path, path of the union the error is under or None, the error)
    for error in exc.errors():
        location, union = [], None
        for part in (str(p) for p in error["loc"]):
            if _is_union_member(part):
                union = tuple(location)
            else:
                location.append(part)
        entries.append((location, union, error))
    deeper = {union for location, union, _ in entries if union is not None and len(location) > len(union)}
    lines: list = []
    unions: dict[tuple, list[dict]] = {}  # the members' type errors at a union's field: one line
    for location, union, error in entries:
        if union is None or tuple(location) != union:
            lines.append(_problem_line(location, error, root, prefix))
        elif union not in deeper:  # else another member matched the value's shape: its error is the one
            if union not in unions:
                unions[union] = []
                lines.append(union)
            unions[union].append(error)
    return [_problem_line(list(line), {**unions[line][0], "msg": "Input should be " + ", or ".join(
        _lowered(e["msg"]) for e in unions[line])}, root, prefix) if isinstance(line, tuple) else line
        for line in lines]


# pydantic's names of a union's members in an error's location: not fields of the spec
_MEMBER_TYPES = {"int", "float", "str", "bool", "none", "list", "dict", "any", "literal"}


def _is_union_member(part: str) -> bool:
    return not (part.isidentifier() or part.isdigit()) or part in _MEMBER_TYPES


def _lowered(message: str) -> str:
    return _plain(message).removeprefix("Input should be ").rstrip(".")


def _plain(message: str) -> str:
    """pydantic's words for a mapping (which name our classes) in the spec's words."""
    import re

    return re.sub(r"a valid dictionary or (instance of \w+|object to extract fields from)",
                  "a block of fields (key: value)", message)


def _problem_line(location: list[str], error: dict, root, prefix: str) -> str:
    loc = prefix + ".".join(location)
    if error["type"] == "extra_forbidden":
        known = _model_at(root, location[:-1]) if root is not None else None
        hint = did_you_mean(location[-1], list(known.model_fields)) if known is not None else ""
        return f"{loc}: unknown key. {hint}".rstrip()
    if error["type"] == "missing":
        return f"{loc}: required field is missing; add it."
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):  # a block told apart by its `kind`
        context = error.get("ctx") or {}
        tag = context.get("discriminator", "'kind'").strip("'")
        kinds = sorted(k.strip().strip("'") for k in str(context.get("expected_tags", "")).split(",") if k.strip()) \
            or sorted(_tags_at(root, location, tag))
        if error["type"] == "union_tag_not_found":
            return f"{loc}: the block has no '{tag}'; give {tag}: one of {', '.join(kinds)}." if kinds else \
                f"{loc}: the block has no '{tag}'; add it."
        return f"{loc}: unknown {tag} '{context.get('tag')}'. {did_you_mean(str(context.get('tag')), kinds)}"
    message = _plain(error["msg"].removeprefix("Value error, ")).rstrip(".")
    value = error.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None or f"'{value}'" in message \
        else f" (got {value!r})"
    return f"{loc}: {message}{shown}." if loc else f"{message}{shown}."


def _tags_at(root, path: list[str], tag: str) -> list[str]:
    """The `tag` values (kinds) of the blocks a path of field names may hold."""
    return [m.model_fields[tag].default for m in _models_at(root, path) if tag in m.model_fields] if root else []


def _model_at(root, path: list[str]):
    """The pydantic model class a path of field names leads to from `root`, or None."""
    candidates = _models_at(root, path)
    return candidates[0] if len(candidates) == 1 else None


def _models_at(root, path: list[str]) -> list:
    """The pydantic model classes a path of field names may lead to from `root` (none: a path that
    leads to no model). List positions are skipped; a discriminated union's tag (a `kind`) picks
    its member."""
    import typing

    from pydantic import BaseModel

    def models_in(annotation) -> list:
        found, pending = [], [annotation]
        while pending:
            candidate = pending.pop()
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found.append(candidate)
            else:
                pending.extend(typing.get_args(candidate))
        return found

    candidates = [root]
    for part in path:
        fields = [m.model_fields[part] for m in candidates if part in m.model_fields]
        if fields:
            candidates = models_in(fields[0].annotation)
        elif not part.isdigit():
            tagged = [m for m in candidates if "kind" in m.model_fields and m.model_fields["kind"].default == part]
            if not tagged:
                return []
            candidates = tagged
        if not candidates:
            return []
    return candidates
