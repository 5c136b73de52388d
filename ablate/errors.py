"""User-facing errors: one paragraph naming the file, the field and the fix; exit code 2."""

from __future__ import annotations


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
        "To fix: ...") gets its closing "Fix:" on a line of its own, not after the last item's."""
        text = self._located()
        separator = "\n" if "\n" in text else " "
        return f"{text}{separator}Fix: {self.fix}" if self.fix else text

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
