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
    out: list[tuple[str, str]] = []
    for meter, name in ((Meter.REQUESTS, "requests"), (Meter.TOKENS, "tokens")):
        tightest: tuple[Metered, CellState] | None = None
        for metered, cell in zip(charges, cells, strict=True):
            if metered.meter is meter and (
                tightest is None
                or cell.remaining < tightest[1].remaining
                or (
                    cell.remaining == tightest[1].remaining
                    and cell.reset_after_s > tightest[1].reset_after_s
                )
            ):
                tightest = (metered, cell)
        if tightest is not None:
            metered, cell = tightest
            out.append((f"x-ratelimit-limit-{name}", _whole(metered.charge.limit.burst)))
            out.append((f"x-ratelimit-remaining-{name}", _whole(max(cell.remaining, 0.0))))
            out.append((f"x-ratelimit-reset-{name}", duration(cell.reset_after_s)))
    return out


def _whole(value: float) -> str:
    return str(math.floor(value + 1e-9))
