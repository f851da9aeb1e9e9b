"""What routing prepares at start-up for each model (:class:`ModelRoute`), and what it keeps
per request only when it must (:class:`RouteState`: after a failure, or when the request
overrides its fallbacks or timeout)."""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.config.model import RetryConfig
from relay.exchange import Deployment
from relay.routing.balance import Balancer
from relay.routing.quota import Refusal


@dataclass(slots=True, frozen=True)
class ModelRoute:
    """One public model: its targets' balancer, its retries, its fallback chains."""

    name: str
    balancer: Balancer
    # Network attempts on this model's targets: 1 + retries.
    max_attempts: int
    retry: RetryConfig
    retry_statuses: frozenset[int]
    fallbacks: tuple[str, ...] = ()
    context_fallbacks: tuple[str, ...] = ()
    policy_fallbacks: tuple[str, ...] = ()


@dataclass(slots=True)
class RouteState:
    """The attempt policy's cursor for one request."""

    primary: ModelRoute
    # From ``x-relay-fallbacks`` (None: the model's own chain).
    fallbacks: tuple[str, ...] | None = None
    # From ``x-relay-timeout``, in seconds.
    timeout_s: float | None = None
    # The model being tried, its order, its attempts so far, the index of the last one tried.
    current: ModelRoute | None = None
    plan: tuple[Deployment, ...] = ()
    model_attempts: int = 0
    last: int = -1
    chain: list[str] = field(default_factory=list)
    # The context-window or content-policy chain was taken (only once per request).
    switched: bool = False
    # Deployments (by id) not to try again for this request, attempts made on each, and the
    # earliest time each may be tried again (the provider's retry-after).
    excluded: set[int] = field(default_factory=set)
    tries: dict[int, int] = field(default_factory=dict)
    not_before: dict[int, float] = field(default_factory=dict)
    # Why attempts were not made, for the error when nothing is left: fallback models the
    # caller's key may not use, deployments whose retry budget was spent.
    denied: list[str] = field(default_factory=list)
    spent: list[str] = field(default_factory=list)
    # Deployments skipped at their quota (targets[].limits), by name, and why.
    limited: dict[str, Refusal] = field(default_factory=dict)
