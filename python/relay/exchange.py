"""The value that flows through the stages: one client request and everything learnt about it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from relay.config.model import Pricing, RateQuota, Timeouts
from relay.wire.usage import Usage

if TYPE_CHECKING:  # the contract lives with the others in stage.py, which imports this module
    from relay.stage import Dialect

__all__ = ["Attempt", "Deployment", "Endpoint", "Exchange", "Limits", "Principal", "Usage"]


class Endpoint(Enum):
    """The API operations the gateway serves; the value is the path under ``/v1``."""

    CHAT = "/chat/completions"
    COMPLETIONS = "/completions"
    EMBEDDINGS = "/embeddings"
    MESSAGES = "/messages"
    COUNT_TOKENS = "/messages/count_tokens"
    RESPONSES = "/responses"
    # Any other /v1 route, forwarded as is (files, images, audio, ...): ``Exchange.path``.
    PASSTHROUGH = "/*"

    # Enum's own __hash__ is Python code (the hash of the member's name), paid by every dict
    # look-up keyed by an endpoint, several a request; members are singletons compared by
    # identity, so identity's hash (C) serves the same.
    __hash__ = object.__hash__


@dataclass(slots=True, frozen=True)
class Limits:
    """Limits and budget of a key or a tenant (None: unlimited); enforced by the limits stage
    (``relay.limits``): a key's and its tenant's both apply."""

    rate_limit_rpm: int | None = None
    tokens_per_minute: int | None = None
    budget_usd: float | None = None
    # The budget's calendar period in UTC ("day", "month") or "total" (never renewed), and the
    # share of it spent at which one alert is logged per period.
    budget_period: str = "month"
    budget_alert_ratio: float = 0.8


@dataclass(slots=True)
class Principal:
    """Who is calling: anonymous (``passthrough``), a gateway key (``keys``), or a tenant named
    by the request's metadata (``none``)."""

    tenant: str = "default"
    key_id: str | None = None
    # The caller's own provider credential, forwarded only to providers configured for it.
    client_authorization: str | None = None
    organization: str = "default"
    tenant_id: str | None = None
    # The key's visible prefix (gw-sk-XXXXXXXX), for the ledger and logs; never the key.
    key_prefix: str | None = None
    user_id: str | None = None
    # "admin" or "user" for a user's key; None for a tenant's (service) key or no key.
    role: str | None = None
    # metadata.use_case from the request: recorded, never used to authorise.
    use_case: str | None = None
    # Models this caller may use (key's list intersected with its tenant's); None: all.
    allowed_models: frozenset[str] | None = None
    key_limits: Limits | None = None
    tenant_limits: Limits | None = None


@dataclass(slots=True, frozen=True)
class Deployment:
    """Where a public model is sent: a configured provider, the model name it knows, prices."""

    provider: str
    upstream_model: str
    public_model: str
    pricing: Pricing = field(default_factory=Pricing)
    # Encoding for counting tokens locally when the provider reports no usage.
    encoding: str = "o200k_base"
    # Drop request parameters the provider cannot honour instead of answering 400.
    drop_unsupported_params: bool = False
    # The provider's timeouts with the model's own applied (None: the provider's).
    timeouts: Timeouts | None = None
    # The provider's quota for this deployment (``targets[].limits``; None: none).
    limits: RateQuota | None = None


@dataclass(slots=True)
class Attempt:
    """One call to a provider for this request. Each attempt owns its results, so an attempt
    that is discarded (retried, fallen back from) is never counted."""

    deployment: Deployment
    number: int = 0
    status: int = 0
    error: str | None = None
    started: float = 0.0
    headers_at: float = 0.0
    # When the response became relayable: the whole body (JSON) or the first content (stream).
    ready_at: float = 0.0
    ended: float = 0.0
    usage: Usage | None = None
    # The generated text not counted yet, for local counting when the provider reports no
    # usage; None until a response arrived. A callable so a stream's text is only joined if
    # needed.
    text: Callable[[], str] | None = None
    # Tokens of generated text already counted and no longer kept: a long stream is counted as
    # it arrives (``stream/tally.py``), never held whole.
    text_tokens: int = 0
    # Prompt tokens counted locally before the answer was mapped (a translated Messages
    # stream's ``message_start`` reports them); settlement reuses them rather than recount.
    prompt_tokens: int | None = None
    # The provider answered with the caller's own credential (passthrough): its account
    # headers (organisation, rate-limit state) describe the caller and may be shown to it.
    caller_credential: bool = False
    # The timeouts this attempt runs under (None: the provider's own).
    timeouts: Timeouts | None = None
    # When the first body bytes arrived (a stream's first read); 0 until then.
    first_byte_at: float = 0.0
    # What went wrong, in a word (timeout, unreachable, rate_limited, server_error, ...).
    error_class: str | None = None

    # Why the answer ended, in the client's dialect, when a translating stream mapper knows it
    # before the dialect's end frames are written (Anthropic's final ``message_delta``).
    stop_reason: str | None = None

    @property
    def latency_s(self) -> float:
        """From sending to the end of the attempt (0 while it runs)."""
        return max(self.ended - self.started, 0.0) if self.ended else 0.0

    @property
    def ttfb_s(self) -> float | None:
        """Time to first byte: a stream's first body bytes, else the response headers."""
        at = self.first_byte_at or self.headers_at
        return at - self.started if at else None

    @property
    def provider(self) -> str:
        """The configured provider's name."""
        return self.deployment.provider

    @property
    def upstream_model(self) -> str:
        """The model name the provider knows."""
        return self.deployment.upstream_model


@dataclass(slots=True)
class Exchange:
    """One request through the gateway: the request, the route, attempts, usage and timings."""

    request_id: str
    endpoint: Endpoint
    body: bytes
    # The client's request headers (granian's read-only mapping, or a dict in tests).
    headers: Mapping[str, str]
    # The inbound API: decodes the request, renders errors, frames the stream for the client.
    dialect: Dialect | None = None
    # The request decoded once by the dialect (a typed msgspec Struct); later stages read it.
    request: Any = None
    model: str = ""
    stream: bool = False
    # Did the client itself ask for the usage chunk? If not, it is stripped from its stream.
    client_wants_usage: bool = False
    principal: Principal = field(default_factory=Principal)
    # The deployment that answers (routing's first choice until an attempt succeeds).
    deployment: Deployment | None = None
    # Routing's ordered plan: the deployments to try, in order.
    plan: tuple[Deployment, ...] = ()
    # Routing's own per-request state (the model's route, then the retry/fallback cursor).
    route: Any = None
    # No model in the request: routing chose ``routing.default_model`` (the upstream body
    # must then be given a model name).
    model_defaulted: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    cost_usd: float | None = None
    status: int = 0
    error_type: str | None = None
    truncated: bool = False
    client_gone: bool = False
    # Headers a stage wants on the client's response (gateway decisions, e.g. cache status).
    reply_headers: list[tuple[str, str]] = field(default_factory=list)
    # Set by the stream relay: ends a started stream with an error event (returns False when
    # the client response has not started, so a JSON error can still be sent).
    abort_stream: Callable[[Exception], Awaitable[bool]] | None = None
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float = 0.0
    finished: float = 0.0
    # State of an inbound API served by translation (a Responses request sent to a chat
    # provider: the chat view of the request, the response being built, event numbering).
    translation: Any = None
    # The route under /v1 of a pass-through request (``Endpoint.PASSTHROUGH``), its method
    # and its query string.
    path: str = ""
    method: str = "POST"
    query: str = ""
    # The attempt whose answer the client received: set by the attempt loop when a JSON
    # answer was mapped or a stream committed; None when no attempt answered (failures).
    answer: Attempt | None = None
    # The JSON answer's bytes as written to the client (after the answer hooks), for taps.
    answer_body: bytes | None = None
    # Per-request state of hooks and stages, keyed by their owner (see ``state_of``).
    state: dict[object, Any] | None = None
    # The client's address as the server saw it (RSGI ``scope.client``, ``ip:port``): whom a
    # caller limit counts when the request carries no key.
    client: str = ""
    # What the limits stage reserved (tokens, spend), settled once after the last byte.
    limits: Any = None
    # A gateway limit applied: its ``x-ratelimit-*`` are on the reply and replace the
    # provider's.
    own_ratelimit: bool = False
    # The response cache's answer: True a hit, False a miss, None not asked (off, bypassed).
    cache_hit: bool | None = None
    # What a hit's recorded answer cost (the hit itself costs nothing).
    cost_saved_usd: float = 0.0
    # The policy that refused the request or its answer ("guard"), for the metrics.
    blocked_by: str | None = None
    # What a ``log_content`` policy kept for the ledger, written with the request's row and
    # nowhere else (never the access log): (store mode, prompt text, completion text, days
    # to keep it).
    content: tuple[str, str, str, float] | None = None

    @property
    def upstream_seconds(self) -> float:
        """Time spent waiting on providers: until each attempt's response was relayable, or
        until a failed attempt ended."""
        total: float = 0  # as sum()'s start: with no ended attempt, the int 0 (the access
        # line writes it as 0, not 0.0)
        for a in self.attempts:  # a loop, not a generator: this runs for every response
            end = a.ready_at or a.ended
            if end:
                total += max(end - a.started, 0.0)
        return total

    @property
    def answered_by(self) -> Attempt | None:
        """The attempt whose answer the client received, if any (never a failed one)."""
        return self.answer

    def state_of(self, owner: object, make: Callable[[], Any]) -> Any:
        """``owner``'s state for this request (a hook's held bytes, say), made on first use."""
        state = self.state
        if state is None:
            state = self.state = {}
        found = state.get(owner)
        if found is None:
            found = state[owner] = make()
        return found
