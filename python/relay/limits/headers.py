"""OpenAI's ``x-ratelimit-*`` headers for the tightest gateway limit of a request.

``x-ratelimit-limit-requests``, ``-remaining-requests`` and ``-reset-requests`` describe the
requests limit with the fewest requests left, the ``-tokens`` twins the tokens limit with the
fewest tokens left. ``limit`` is the burst (what a full cell holds: the per-minute amount of
a ``rate_limit_rpm``), ``remaining`` what is left of it after this request, ``reset`` the time
until the cell is full again, in OpenAI's duration format (``6m0s``, ``1s``, ``120ms``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from relay.limits.rule import Meter, Metered
from relay.storage.limits import CellState


def duration(seconds: float) -> str:
    """``seconds`` as OpenAI writes a reset time (Go's duration format, to the millisecond):
    ``0s``, ``120ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h0m0s``."""
    ms = math.ceil(seconds * 1000 - 1e-6) if seconds > 0 else 0
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    text = f"{secs}.{ms:03d}".rstrip("0").rstrip(".") + "s" if ms else f"{secs}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def ratelimit_headers(
    charges: Sequence[Metered], cells: Sequence[CellState]
) -> list[tuple[str, str]]:
    """The headers of the tightest requests limit and the tightest tokens limit among
    ``charges`` (``cells``: their states after the decision, in the same order); none for a
    meter no charge counts (spend has no OpenAI header)."""
    requests: tuple[Metered, CellState] | None = None
    tokens: tuple[Metered, CellState] | None = None
    for metered, cell in zip(charges, cells):  # noqa: B905 (one cell per charge, always)
        meter = metered.meter
        if meter is _REQUESTS:
            if requests is None or _tighter(cell, requests[1]):
                requests = (metered, cell)
        elif meter is _TOKENS and (tokens is None or _tighter(cell, tokens[1])):
            tokens = (metered, cell)
    out: list[tuple[str, str]] = []
    if requests is not None:
        metered, cell = requests
        out.append(("x-ratelimit-limit-requests", _whole(metered.charge.limit.burst)))
        out.append(("x-ratelimit-remaining-requests", _whole(cell.remaining)))
        out.append(("x-ratelimit-reset-requests", duration(cell.reset_after_s)))
    if tokens is not None:
        metered, cell = tokens
        out.append(("x-ratelimit-limit-tokens", _whole(metered.charge.limit.burst)))
        out.append(("x-ratelimit-remaining-tokens", _whole(cell.remaining)))
        out.append(("x-ratelimit-reset-tokens", duration(cell.reset_after_s)))
    return out


_REQUESTS = Meter.REQUESTS
_TOKENS = Meter.TOKENS


def _tighter(cell: CellState, than: CellState) -> bool:
    """Fewer left, or as few and longer to wait."""
    return cell.remaining < than.remaining or (
        cell.remaining == than.remaining and cell.reset_after_s > than.reset_after_s
    )


def _whole(value: float) -> str:
    return str(math.floor(value + 1e-9)) if value > 0 else "0"
