"""The value that flows through the stages: one client request and everything learnt about it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from relay.config.model import Pricing
from relay.errors import GatewayError


class Endpoint(Enum):
    """The API operations the gateway proxies; the value is the path under ``/v1``."""

    CHAT = "/chat/completions"
    COMPLETIONS = "/completions"
    EMBEDDINGS = "/embeddings"


@dataclass(slots=True)
class Usage:
    """Token usage of one request. ``counted_locally`` when the provider reported none."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    counted_locally: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Principal:
    """Who is calling. Until tenants and keys exist every caller is anonymous."""

    tenant: str = "default"
    key_id: str | None = None
    # The caller's own provider credential, forwarded only to providers configured for it.
    client_authorization: str | None = None


@dataclass(slots=True, frozen=True)
class Deployment:
    """Where a public model is sent: a configured provider, the model name it knows, prices."""

    provider: str
    upstream_model: str
    public_model: str
    pricing: Pricing = field(default_factory=Pricing)
    # Encoding for counting tokens locally when the provider reports no usage.
    encoding: str = "o200k_base"


@dataclass(slots=True)
class Attempt:
    """One call to a provider for this request, kept in order."""

    provider: str
    upstream_model: str
    status: int = 0
    error: str | None = None
    started: float = 0.0
    headers_at: float = 0.0
    # When the response became relayable: the whole body (JSON) or the first event (stream).
    ready_at: float = 0.0
    ended: float = 0.0


@dataclass(slots=True)
class Exchange:
    """One request through the gateway: the request, the route, attempts, usage and timings."""

    request_id: str
    endpoint: Endpoint
    body: bytes
    # The client's request headers (granian's read-only mapping, or a dict in tests).
    headers: Mapping[str, str]
    model: str = ""
    stream: bool = False
    # Did the client itself ask for the usage chunk? If not, it is stripped from its stream.
    client_wants_usage: bool = False
    principal: Principal = field(default_factory=Principal)
    deployment: Deployment | None = None
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    cost_usd: float | None = None
    status: int = 0
    error_type: str | None = None
    truncated: bool = False
    client_gone: bool = False
    # The generated text as it was relayed (the pieces of every choice), for local token
    # counting when the provider reports no usage; None until a response arrived.
    completion_parts: list[str] | None = None
    # Set by the stream relay: ends a started stream with an error event (returns False when
    # the client response has not started, so a JSON error can still be sent).
    abort_stream: Callable[[GatewayError], Awaitable[bool]] | None = None
    started: float = field(default_factory=time.perf_counter)
    finished: float = 0.0

    @property
    def upstream_seconds(self) -> float:
        """Time spent waiting on providers until each attempt's response was relayable."""
        return sum(max(a.ready_at - a.started, 0.0) for a in self.attempts if a.ready_at)
