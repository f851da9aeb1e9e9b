"""Which configuration a gateway serves: a hash of the validated configuration and the time
it was applied.

The hash is taken over the exact bytes the main process hands to the workers
(:mod:`relay.config.handoff`), so every worker of one gateway reports the same version, and a
file edited back to what is running is recognised as no change.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from relay.config.model import Config


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """``hash``: ``sha256:`` and 16 hex digits of the handed-over bytes; ``applied_at``: Unix
    seconds when the main process published it (or the app was built, without one)."""

    hash: str
    applied_at: float

    @classmethod
    def of_bytes(cls, data: bytes, applied_at: float | None = None) -> ConfigVersion:
        """The version of the handed-over bytes ``data``."""
        digest = hashlib.sha256(data).hexdigest()[:16]
        return cls(f"sha256:{digest}", time.time() if applied_at is None else applied_at)

    @classmethod
    def of(cls, config: Config, applied_at: float | None = None) -> ConfigVersion:
        """The version of ``config`` as it would be handed over."""
        return cls.of_bytes(msgspec.json.encode(config), applied_at)

    def as_dict(self) -> dict[str, str]:
        """``{"hash", "applied_at"}``, the time in ISO 8601 (UTC)."""
        applied = datetime.fromtimestamp(self.applied_at, UTC).isoformat(timespec="milliseconds")
        return {"hash": self.hash, "applied_at": applied.replace("+00:00", "Z")}
