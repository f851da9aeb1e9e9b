"""Reading a policy's settings block with errors by path (``policies.style.cap.max_tokens:
expected a positive number``), shared by the built-in kinds and open to plugins."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from relay.config.problems import unknown
from relay.policies.base import PolicySpec

__all__ = ["Settings"]


class Settings:
    """The block of one policy; each getter raises ValueError naming the setting."""

    def __init__(self, spec: PolicySpec, known: tuple[str, ...]) -> None:
        self.spec = spec
        self.path = f"policies.{spec.name}"
        for key in spec.settings:
            if key not in known:
                self.fail(str(key), unknown(f"setting of kind {spec.kind!r}", str(key), known))

    def fail(self, where: str, message: str) -> None:
        """Raise the problem at ``policies.<name>.<where>``."""
        raise ValueError(f"{self.path}.{where}: {message}")

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value of ``key``, or ``default``."""
        return self.spec.settings.get(key, default)

    def string(self, key: str, default: str | None = None) -> str | None:
        """A string (or absent)."""
        value = self.get(key, default)
        if value is None or isinstance(value, str):
            return value
        self.fail(key, f"expected a string, got {type(value).__name__}")
        return None

    def strings(self, key: str) -> list[str]:
        """A list of strings (absent: empty)."""
        value = self.get(key, [])
        if not isinstance(value, list):
            self.fail(key, f"expected a list of strings, got {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.fail(f"{key}[{i}]", "expected a non-empty string")
        return list(value)

    def mapping(self, key: str) -> dict[str, Any]:
        """A mapping with string keys (absent: empty)."""
        value = self.get(key, {})
        if not isinstance(value, Mapping):
            self.fail(key, f"expected a mapping, got {type(value).__name__}")
        for name in value:
            if not isinstance(name, str) or not name:
                self.fail(key, f"expected names as keys, got {name!r}")
        return dict(value)

    def positive_int(self, key: str) -> int | None:
        """A positive integer (or absent)."""
        value = self.get(key)
        if value is None or (not isinstance(value, bool) and isinstance(value, int) and value > 0):
            return value
        self.fail(key, f"expected a positive integer, got {value!r}")
        return None

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """One of ``choices``."""
        value = self.get(key, default)
        if value not in choices:
            self.fail(key, unknown("value", str(value), choices))
        return str(value)

    def patterns(self, key: str) -> list[re.Pattern[str]]:
        """A list of regular expressions (Python syntax), each compiled."""
        compiled = []
        for i, source in enumerate(self.strings(key)):
            try:
                compiled.append(re.compile(source))
            except re.error as exc:
                self.fail(f"{key}[{i}]", f"invalid regular expression: {exc}")
        return compiled
