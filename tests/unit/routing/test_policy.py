"""The attempt policy and the routing stage: which deployment each attempt goes to."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relay.config import parse_config
from relay.errors import (
    CircuitOpen,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    UpstreamStatusError,
    UpstreamTimeout,
)
from relay.exchange import Attempt, Endpoint, Exchange
from relay.routing.policy import RoutingPolicy
from relay.routing.router import Router

CONFIG = """
providers:
  a: {kind: openai, base_url: "http://a/v1", timeouts: {first_byte_s: 30, idle_s: 5, total_s: 60}}
  b: {kind: openai, base_url: "http://b/v1"}
routing:
  default_model: pair
  allow_direct: true
  breaker: {min_requests: 50, failure_rate: 0.5, cooldown_s: 10}
  retry_budget: {ratio: 1, min_retries: 100}
models:
  pair:
    targets: [{provider: a, model: x}, {provider: b, model: y, weight: 0}]
    retries: {max: 3, backoff_base_s: 1, backoff_max_s: 8}
    fallbacks: [solo]
    context_window_fallbacks: [big]
  solo: {provider: b, model: z, retries: 0, pricing: {input: 2}}
  big: {provider: b, model: big, timeouts: {read_s: 3}}
"""

E503 = UpstreamStatusError(503, "overloaded")


def e503() -> UpstreamStatusError:
    """A fresh 503: an error that ends a request may gain notes in its message."""
    return UpstreamStatusError(503, "overloaded")


E400 = UpstreamStatusError(400, "bad")
CTX = UpstreamStatusError(400, "too long", code="context_length_exceeded")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def setup(text: str = CONFIG, **headers: str) -> tuple[Router, RoutingPolicy, Clock]:
    router = Router(parse_config(text, "t", {}))
    clock = Clock()
    return router, RoutingPolicy(router, clock=clock, sleep=clock.sleep, rand=lambda: 0.5), clock


def exchange(router: Router, model: str = "pair", **headers: str) -> Exchange:
    ex = Exchange("r", Endpoint.CHAT, b"", headers, model=model)
    ex.started = 1000.0
    asyncio.run(router(ex))
    return ex


def walk(
    policy: RoutingPolicy, ex: Exchange, outcomes: list[GatewayError | None], **kw: Any
) -> list[str]:
    """Run attempts with the given outcomes (None: success); the deployments tried."""

    async def run() -> list[str]:
        seen: list[str] = []
        failed: Attempt | None = None
        err: GatewayError | None = None
        for outcome in outcomes:
            deployment = await policy.next(ex, failed, err)
            attempt = Attempt(deployment, len(ex.attempts), started=1000.0)
            ex.attempts.append(attempt)
            seen.append(f"{deployment.provider}/{deployment.upstream_model}")
            policy.finished(ex, attempt, outcome, kw.get("headers"))
            if outcome is None:
                return seen
            failed, err = attempt, outcome
        await policy.next(ex, failed, err)  # must raise: nothing left
        raise AssertionError("the policy went on")

    return asyncio.run(run())


def test_first_attempt_success_touches_no_state() -> None:
    router, policy, _ = setup()
    ex = exchange(router)
    assert walk(policy, ex, [None]) == ["a/x"]
    assert type(ex.route).__name__ == "ModelRoute"  # no cursor was made
    assert router.slot(ex.plan[0]).inflight == 0


def test_retries_cycle_targets_and_wait_only_on_the_same_one() -> None:
    router, policy, clock = setup()
    ex = exchange(router)
    assert walk(policy, ex, [E503, E503, E503, None]) == ["a/x", "b/y", "a/x", "b/y"]
    assert clock.slept == [0.5, 0.5]  # backoff with full jitter (rand 0.5 x base 1)


def test_retry_after_from_the_provider_is_the_wait() -> None:
    router, policy, clock = setup()
    ex = exchange(router)
    walk(policy, ex, [E503, E503, None], headers={"retry-after": "2"})
    assert clock.slept == [2.0]
    ex = exchange(router)
    # Longer than retries.retry_after_max_s (10): that deployment is not tried again.
    assert walk(policy, ex, [E503, E503, None], headers={"retry-after": "60"}) == [
        "a/x",
        "b/y",
        "b/z",
    ]


def test_fallbacks_after_the_targets_are_exhausted_and_final_errors_stop() -> None:
    router, policy, _ = setup()
    assert walk(policy, exchange(router), [E503] * 4 + [None])[-1] == "b/z"
    with pytest.raises(UpstreamStatusError) as info:
        walk(policy, exchange(router), [E503] * 5)
    assert info.value.status == 503
    with pytest.raises(UpstreamStatusError):
        walk(policy, exchange(router), [E400])  # 400: no retry, no fallback


def test_context_window_errors_take_their_own_chain() -> None:
    router, policy, _ = setup()
    assert walk(policy, exchange(router), [CTX, None]) == ["a/x", "b/big"]


def test_header_fallbacks_replace_the_chain_and_are_checked() -> None:
    router, policy, _ = setup()
    ex = exchange(router, **{"x-relay-fallbacks": "big"})
    assert walk(policy, ex, [E503] * 4 + [None])[-1] == "b/big"
    with pytest.raises(InvalidRequest, match="'nope' not configured"):
        exchange(router, **{"x-relay-fallbacks": "big, nope"})


def test_open_circuits_are_skipped_and_all_open_is_a_503() -> None:
    router, policy, clock = setup(CONFIG.replace("min_requests: 50", "min_requests: 2"))
    for _ in range(2):  # a/x fails twice: open
        walk(policy, exchange(router), [E503, None])
    assert router.breakers.states()["a/x"] == "open"
    assert walk(policy, exchange(router), [None]) == ["b/y"]  # no call to a/x
    solo = exchange(router, "solo")
    with pytest.raises(UpstreamStatusError):
        walk(policy, solo, [E503])
    with pytest.raises(UpstreamStatusError):
        walk(policy, exchange(router, "solo"), [E503])
    with pytest.raises(CircuitOpen) as info:
        walk(policy, exchange(router, "solo"), [])
    assert info.value.status == 503 and dict(info.value.headers)["retry-after"] == "10"
    clock.now += 10
    assert walk(policy, exchange(router, "solo"), [None]) == ["b/z"]  # the probe closes it
    assert router.breakers.states()["b/z"] == "closed"


def spend_budgets(router: Router, retries: int) -> None:
    """Every slot's budget allows ``retries`` retries in all, with no traffic to earn more."""
    for route in router.routes.values():
        for deployment in route.balancer.orders[0]:
            budget = router.slot(deployment).budget
            budget.min_retries, budget.ratio = retries + 1, 0


def test_the_budget_stops_retries_on_a_deployment_not_failover_or_fallbacks() -> None:
    router, policy, _ = setup()
    spend_budgets(router, 1)
    # a/x once, b/y (failover: another deployment), a/x again (its one retry), b/y again (its
    # one retry); a/x's budget is spent: the fallback b/z is still tried.
    assert walk(policy, exchange(router), [E503] * 4 + [None]) == [
        "a/x", "b/y", "a/x", "b/y", "b/z",
    ]  # fmt: skip
    # Both budgets spent: one attempt each, then the fallback.
    assert walk(policy, exchange(router), [E503, E503, None]) == ["a/x", "b/y", "b/z"]
    with pytest.raises(UpstreamStatusError) as info:
        walk(policy, exchange(router, "pair", **{"x-relay-fallbacks": ""}), [e503(), e503()])
    assert info.value.message == (
        "overloaded (not retried on a/x, b/y: their retry budgets are spent (routing.retry_budget))"
    )


def test_fallbacks_outside_the_keys_allowed_models_are_skipped() -> None:
    router, policy, _ = setup()
    ex = exchange(router, **{"x-relay-fallbacks": "big, solo"})
    ex.principal.allowed_models = frozenset({"pair", "solo"})
    assert walk(policy, ex, [e503()] * 4 + [None])[-1] == "b/z"
    ex = exchange(router)
    ex.principal.allowed_models = frozenset({"pair"})
    with pytest.raises(UpstreamStatusError) as info:
        walk(policy, ex, [e503()] * 4)
    assert info.value.message.endswith("(fallback 'solo' not tried: this key may not use it)")
    ex = exchange(router)  # the context-window chain too
    ex.principal.allowed_models = frozenset({"pair"})
    with pytest.raises(UpstreamStatusError, match="fallback 'big' not tried"):
        walk(policy, ex, [UpstreamStatusError(400, "too long", code="context_length_exceeded")])


def test_request_timeout_caps_attempts_and_ends_retries() -> None:
    router, policy, clock = setup()
    ex = exchange(router, **{"x-relay-timeout": "2"})
    timeouts = policy.timeouts(ex, ex.plan[0])
    assert timeouts is not None
    assert (timeouts.first_byte, timeouts.idle, timeouts.total_s) == (2, 2, 2)
    clock.now += 3  # the deadline passed: no retry
    with pytest.raises(UpstreamTimeout, match=r"^slow \(no further attempt: x-relay-timeout 2s"):
        walk(policy, ex, [UpstreamTimeout("slow")])
    resolved = router.routes["big"].balancer.orders[0][0].timeouts
    assert resolved is not None and (resolved.first_byte, resolved.idle) == (3, 3)


def test_names_default_model_direct_and_unknown() -> None:
    router, _, _ = setup()
    ex = exchange(router, "")
    assert ex.model == "pair" and ex.model_defaulted
    direct = exchange(router, "b/z").plan[0]
    assert (direct.provider, direct.upstream_model, direct.pricing.input) == ("b", "z", 2)
    with pytest.raises(ModelNotFound):
        exchange(router, "c/z")
    bare = CONFIG.replace("  default_model: pair\n", "")
    router, _, _ = setup(bare)
    with pytest.raises(InvalidRequest, match=r"no routing\.default_model"):
        exchange(router, "")
    with pytest.raises(InvalidRequest, match="x-relay-timeout"):
        exchange(router, "pair", **{"x-relay-timeout": "-1"})
