"""Values the gateway reads from a client's own headers."""

from __future__ import annotations

import math

from relay.errors import InvalidRequest


def positive_seconds(header: str, value: str, *, param: str | None = None) -> float:
    """``value`` of ``header`` as a number of seconds above 0 (finite); else a 400 naming the
    header and what it held."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise InvalidRequest(
            f"{header}: expected a number of seconds above 0, got {value[:40]!r}", param=param
        )
    return seconds
