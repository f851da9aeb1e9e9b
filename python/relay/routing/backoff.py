"""How long to wait before trying a deployment again: exponential backoff with full jitter,
or what the provider asked for (``retry-after``, ``retry-after-ms``, ``x-ratelimit-reset-*``).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

# OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s".
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def backoff_s(
    retry: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in ``[0, min(max_s, base_s * 2**(retry - 1))]`` for retry 1, 2, ..."""
    return rand() * min(max_s, base_s * (1 << min(max(retry - 1, 0), 30)))


def retry_hint_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the provider asked to wait, from lower-cased response headers; None if it did
    not say. ``retry-after`` (seconds or an HTTP date) wins; else the reset of the rate limit
    that is exhausted (``x-ratelimit-remaining-* == 0``), else the sooner reset."""
    if (value := headers.get("retry-after-ms")) is not None and (ms := _number(value)) is not None:
        return ms / 1000.0
    if (value := headers.get("retry-after")) is not None:
        seconds = _number(value)
        if seconds is not None:
            return seconds
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return max(when - (time.time() if now is None else now), 0.0)
    resets: list[float] = []
    exhausted: list[float] = []
    for kind in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        seconds = duration_s(reset) if reset is not None else None
        if seconds is None:
            continue
        resets.append(seconds)
        if headers.get(f"x-ratelimit-remaining-{kind}") == "0":
            exhausted.append(seconds)
    if exhausted:
        return max(exhausted)
    return min(resets) if resets else None


def duration_s(text: str) -> float | None:
    """``"6m0s"`` -> 360.0; a bare number is seconds; None when unreadable."""
    number = _number(text)
    if number is not None:
        return number
    text = text.strip()
    total, end = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != end:
            return None
        total += float(match[1]) * _UNIT_S[match[2]]
        end = match.end()
    return total if end and end == len(text) else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None
