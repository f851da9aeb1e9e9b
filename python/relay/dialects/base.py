"""What an inbound API (a dialect) owns: request decoding, error rendering, stream framing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from relay.errors import GatewayError
from relay.exchange import Endpoint, Exchange, Usage


class Dialect(ABC):
    """One inbound API operation (OpenAI chat, Anthropic messages, ...).

    ``wire`` names the format family; a provider that speaks the same family passes bytes
    through untouched, any other translates. Errors are rendered here and nowhere else.
    """

    wire: ClassVar[str]
    endpoint: Endpoint

    @property
    def path(self) -> str:
        """The route under which clients call this dialect."""
        return "/v1" + self.endpoint.value

    @abstractmethod
    def parse(self, ex: Exchange) -> None:
        """Decode ``ex.body`` once into ``ex.request``; fill ``model``, ``stream`` and
        ``client_wants_usage``; raise :class:`~relay.errors.InvalidRequest` on bad input."""

    @abstractmethod
    def error_body(self, err: GatewayError) -> bytes:
        """The JSON error envelope of this API."""

    @abstractmethod
    def error_frame(self, err: GatewayError) -> bytes:
        """The SSE event that ends a committed stream on a failure."""

    @abstractmethod
    def end_frames(self, ex: Exchange, usage_chunk: Usage | None) -> bytes:
        """What ends a complete stream: the locally counted usage chunk when the client asked
        for usage and the provider sent none, the cost comment, the terminator."""
