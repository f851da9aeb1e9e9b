"""Configuration problems, collected and rendered in one style: ``path: what was wrong``.

Every check appends here instead of raising, so that one run lists every mistake. A path that
was set by an environment variable or a command-line flag is shown with that origin
(``server.port (from SERVER_PORT): ...``): the user must know where to look.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

_SHOWN_CHARS = 40


class Problems:
    """An ordered, de-duplicated list of problems, each naming its path and, if any, its origin."""

    def __init__(self) -> None:
        self._items: list[str] = []
        # config path -> what set it, when not the file ("SERVER_PORT", "--port").
        self.origins: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        """Record one problem at ``path`` (empty for the file as a whole).

        The origin is taken now: a problem found in the file before an override replaced the
        value (a duplicate key) is the file's, not the flag's.
        """
        origin = self.origins.get(path)
        where = f"{path} (from {origin})" if origin else path
        line = _one_line(f"{where}: {message}" if where else message)
        if line not in self._items:
            self._items.append(line)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def lines(self) -> list[str]:
        """Each problem as one line, in the order found."""
        return list(self._items)


def _one_line(text: str) -> str:
    """Escape what is not printable (a key with a newline in it), so a problem stays one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def unknown(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown provider 'x' (known: a, b)``: a wrong name always comes with the right ones."""
    names = ", ".join(sorted(known)) or "none configured"
    return f"unknown {what} {name!r} (known: {names})"


def shown(value: Any) -> str:
    """A value as a message may quote it: short, YAML words for YAML things."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 4] + "...'"


def importable(module: str) -> bool:
    """Whether ``module`` can be imported here (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False
