"""Reading user files, in one place: every OS, decoding and parsing error becomes one AblateError
that names the path and the fix (a missing file, a folder, a named pipe or a device, a dangling
symlink or a symlink loop, no permission, invalid UTF-8, JSON nested too deep, duplicate YAML keys,
YAML anchors that expand past a bound). Only regular files are read: a FIFO would block the read
forever, /dev/zero would never end it.
And the one check of a folder we are about to write into (`check_output_folder`), and of a file
(`check_output_file`)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from ablate.errors import AblateError

# The expanded size of a YAML document (every value, each alias counted as the whole of what it
# names): a spec or a dashboard page has a few hundred; nested anchors ("billion laughs") reach 10^9
# from a hundred characters.
MAX_YAML_VALUES = 100_000

_NOT_REGULAR = ((stat.S_ISDIR, "it is a folder, not a file"), (stat.S_ISFIFO, "it is a named pipe (FIFO), not a file"),
                (stat.S_ISCHR, "it is a character device, not a file"), (stat.S_ISBLK, "it is a block device, not a file"),
                (stat.S_ISSOCK, "it is a socket, not a file"))


class _Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((reason for test, reason in _NOT_REGULAR if test(mode)), "it is not a regular file")


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file. Opened without blocking (a FIFO with no writer would block the
    open itself), then refused unless fstat says it is a regular file: no check-then-open race."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise _Unreadable("it is a folder, not a file") from None
    except FileNotFoundError:
        raise _Unreadable("it is a symlink to nothing" if path.is_symlink() else "it does not exist") from None
    except PermissionError:
        raise _Unreadable("permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Unreadable("a symlink loop") from None
        try:  # a socket cannot be opened at all (ENXIO): say what it is
            reason = _not_regular(os.stat(path).st_mode)
        except OSError:
            reason = None
        raise _Unreadable(reason or exc.strerror or str(exc)) from None
    try:
        reason = _not_regular(os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    if reason:
        os.close(fd)
        raise _Unreadable(reason)
    os.set_blocking(fd, True)
    with open(fd, "rb", closefd=True) as stream:
        try:
            return stream.read()
        except OSError as exc:
            raise _Unreadable(exc.strerror or str(exc)) from None


def read_bytes(path: str | Path, what: str, fix: str, field: str | None = None) -> bytes:
    """The bytes of a regular file; `what` names it in the message ("the task file")."""
    path = Path(path)
    try:
        return _read_regular(path)
    except _Unreadable as exc:
        raise AblateError(f"cannot read {what}: {exc.reason}.", file=str(path), field=field, fix=fix) from None


def read_text(path: str | Path, what: str, fix: str, field: str | None = None) -> str:
    """The UTF-8 text of a file; `what` names it in the message ("the spec", "the task file")."""
    return decode_text(read_bytes(path, what, fix, field), path, what, fix, field)


def decode_text(content: bytes, path: str | Path, what: str, fix: str, field: str | None = None) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AblateError(f"cannot read {what}: it is not UTF-8 text (byte {exc.start}).", file=str(path),
                          field=field, fix=fix) from None


def check_regular_file(path: str | Path, what: str, fix: str, field: str | None = None) -> Path:
    """A file handed to a library that opens it itself (a tokenizer.json to `tokenizers`): refused
    here, with the reason, unless it is a regular file we may read."""
    path = Path(path)
    try:
        reason = _not_regular(path.stat().st_mode)
    except FileNotFoundError:
        reason = "it is a symlink to nothing" if path.is_symlink() else "it does not exist"
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    if reason is None and not os.access(path, os.R_OK):
        reason = "permission denied"
    if reason:
        raise AblateError(f"cannot read {what}: {reason}.", file=str(path), field=field, fix=fix)
    return path


def read_json(path: str | Path, what: str, fix: str) -> Any:
    return decode_json(read_bytes(path, what, fix), path, what, fix)


def decode_json(content: bytes, path: str | Path, what: str, fix: str) -> Any:
    """The JSON value of a file's bytes (read once, e.g. also hashed), with read_json's errors."""
    text = decode_text(content, path, what, fix)
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


def _expanded_size(node, sizes: dict[int, int | None], limit: int) -> int:
    """How many values `node` stands for once every alias is expanded (an alias shares the node of
    its anchor, so each node is counted once and its size reused). Stops past `limit`."""
    import yaml

    key = id(node)
    if key in sizes:
        if sizes[key] is None:  # still being counted: the anchor's value holds an alias to itself
            return limit + 1
        return sizes[key]
    sizes[key] = None
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, limit)
        if total > limit:
            break
    sizes[key] = total
    return total


def load_yaml(path: str | Path, what: str, fix: str) -> Any:
    """A YAML file as data: safe types only, no duplicate keys, at most MAX_YAML_VALUES values
    once its anchors and aliases are expanded (measured on the composed node graph, before any
    Python object is built)."""
    import yaml

    text = read_text(path, what, fix)
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}, MAX_YAML_VALUES) > MAX_YAML_VALUES:
                raise AblateError(f"the YAML's anchors and aliases expand to more than {MAX_YAML_VALUES:,} values "
                                  "(or an anchor refers to itself).", file=str(path),
                                  fix="write the values out instead of nesting anchors.")
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
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
    reason = None if existing is None else cannot_write_in(existing)
    if reason:
        raise AblateError(f"'{existing}' is not writable ({reason}), so the folder '{out}' cannot be made.",
                          field=field, fix=f"give {field} a folder you can write.")


def check_output_file(path: str | Path, field: str) -> Path:
    """A file we will write (atomically: a scratch file beside it, then renamed over it) must not
    be a folder or a special file, and its folder must be one we can create or write: checked
    before anything starts, so a bad path fails with a message, not after the work it would hold."""
    path = Path(path)
    try:
        reason = _not_regular(path.stat().st_mode)
    except OSError:  # nothing there yet (or a broken link, which the file replaces)
        reason = None
    if reason:
        raise AblateError(f"'{path}' exists and {reason}, so the file cannot be written there.", field=field,
                          fix=f"give {field} the path of a file: a new one, or a file to replace.")
    check_output_folder(path.parent, field)
    return path


def cannot_write_in(folder: Path) -> str | None:
    """Why nothing can be created in this existing folder, or None. Tried, not guessed from the
    mode bits: root passes every permission check, yet /proc, /sys and read-only mounts refuse a
    new entry. The try is an unnamed file (O_TMPFILE: no name ever appears, so a concurrent reader
    of the folder sees nothing); where the filesystem has no unnamed files, a probe folder that is
    removed at once."""
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    unnamed = getattr(os, "O_TMPFILE", 0)
    if unnamed:
        try:
            os.close(os.open(folder, unnamed | os.O_WRONLY, 0o600))
            return None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                return exc.strerror or str(exc)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ablate-write-check-", dir=folder))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def write_json(path: Path, payload) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    write_text_atomic(path, json.dumps(payload, indent=2))


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(path.suffix + ".tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(path)
