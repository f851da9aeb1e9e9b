"""Which configuration to read: ``--config``, else ``$RELAY_CONFIG``, else a file in the
working directory (``configs/config.yaml``, ``config.yaml``: where users of other gateways keep
it), else the embedded default. The answer says which, so start-up can tell the user."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Looked for, in this order, in the working directory.
DISCOVERED = ("configs/config.yaml", "config.yaml")
EMBEDDED = "<embedded default>"


@dataclass(frozen=True)
class ConfigSource:
    """Where a configuration comes from: a file (and why that one), or the embedded default."""

    path: Path | None
    origin: str  # "--config", "RELAY_CONFIG", "the working directory", "embedded"

    @property
    def name(self) -> str:
        """The file as the user gave it, or ``<embedded default>``; used in messages."""
        return str(self.path) if self.path is not None else EMBEDDED

    def describe(self) -> str:
        """One phrase for the start-up line: which file, and why that one."""
        if self.path is None:
            return (
                "embedded default (no --config, no RELAY_CONFIG, no "
                + " or ".join(f"./{name}" for name in DISCOVERED)
                + ")"
            )
        if self.origin == "the working directory":
            return f"{self.path} (found in the working directory)"
        return f"{self.path} (from {self.origin})"


def find_config(
    given: str | None, env: Mapping[str, str], cwd: Path | None = None, flag: str = "--config"
) -> ConfigSource:
    """Pick the configuration to read; ``flag`` names how ``given`` was passed."""
    if given:
        return ConfigSource(Path(given), flag)
    if chosen := env.get("RELAY_CONFIG"):
        return ConfigSource(Path(chosen), "RELAY_CONFIG")
    base = cwd or Path.cwd()
    for name in DISCOVERED:
        if (base / name).is_file():
            # Shown relative, as the user would type it.
            return ConfigSource(Path(name) if cwd is None else base / name, "the working directory")
    return ConfigSource(None, "embedded")
