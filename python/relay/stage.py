"""The contract between the composition root and the request stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relay.exchange import Exchange


@dataclass(slots=True, frozen=True)
class Reply:
    """A complete answer a stage gives instead of passing the request on (e.g. a cache hit)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Stage(Protocol):
    """One step on the way in. Raise a :class:`~relay.errors.GatewayError` to refuse."""

    async def __call__(self, ex: Exchange) -> Reply | None:
        """Pass the exchange on (return None) or answer it (return a :class:`Reply`)."""
        ...


class Tap(Protocol):
    """Observes every finished exchange: accounting, and later metrics, ledger, cache writes."""

    def on_finish(self, ex: Exchange) -> None:
        """Called once per exchange, after the response is known (and before ``[DONE]``)."""
        ...
