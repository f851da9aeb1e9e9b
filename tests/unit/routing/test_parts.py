"""Breakers, the retry budget, backoff and retry hints, error classes, balancing."""

from __future__ import annotations

import pytest

from relay.config.model import BreakerConfig, RetryBudgetConfig
from relay.errors import (
    InvalidRequest,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from relay.exchange import Deployment
from relay.routing.backoff import backoff_s, duration_s, retry_hint_s
from relay.routing.balance import Balancer, Slot
from relay.routing.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, Breakers
from relay.routing.budget import RetryBudget
from relay.routing.classify import CONTEXT, FINAL, MOVE, POLICY, RETRY, action, error_class

STATUSES = frozenset({429, 500, 502, 503, 504, 529})


def breaker(**config: float) -> tuple[Breaker, list[tuple[str, str]]]:
    changes: list[tuple[str, str]] = []
    b = Breaker(
        "p/m",
        BreakerConfig(min_requests=4, cooldown_s=10, **config),
        lambda k, o, n: changes.append((o, n)),
    )  # type: ignore[arg-type]
    return b, changes


def test_breaker_needs_min_requests_and_the_failure_rate() -> None:
    b, changes = breaker()
    for ok in (True, False, False):
        b.record(ok, 1.0)
    assert b.state is CLOSED  # 3 calls: under min_requests
    b.record(False, 1.0)
    assert b.state is OPEN  # 3 of 4 failed: at least the rate (0.5)
    assert changes == [(CLOSED, OPEN)]


def test_breaker_open_half_open_closed() -> None:
    b, changes = breaker()
    for _ in range(4):
        b.record(False, 1.0)
    assert not b.allow(5.0) and b.retry_in(5.0) == pytest.approx(6.0)
    assert b.allow(11.0) and b.state is HALF_OPEN  # one probe
    assert not b.allow(11.0)  # only one
    b.record(False, 11.5)
    assert b.state is OPEN and not b.allow(12.0)
    assert b.allow(21.6)
    b.record(True, 21.7)
    assert b.state is CLOSED and b.allow(21.8) and b.total_calls == 0
    assert changes == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_breaker_window_forgets_old_outcomes() -> None:
    b, _ = breaker(window_s=10)
    for _ in range(3):
        b.record(False, 100.0)
    b.record(False, 115.0)  # the first three are out of the window
    assert b.state is CLOSED and b.total_calls == 1


def test_breakers_expose_states_and_disabled_never_opens() -> None:
    breakers = Breakers(BreakerConfig(enabled=False, min_requests=1))
    for _ in range(10):
        breakers.get("a/m").record(False, 1.0)
    assert breakers.states() == {"a/m": "closed"}


def test_budget_allows_a_share_of_requests_plus_a_floor() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_retries=3, window_s=10))
    for _ in range(50):
        budget.request(1.0)
    allowed = sum(budget.try_retry(1.0) for _ in range(100))
    assert 50 + allowed < 1.2 * 50 + 3 and allowed == 12
    assert budget.try_retry(30.0)  # a new window


def test_budget_refusals_are_logged_once_per_window() -> None:
    budget = RetryBudget(RetryBudgetConfig(window_s=10))
    assert budget.should_warn(1.0)
    assert not budget.should_warn(5.0)
    assert budget.should_warn(11.0)


def test_backoff_full_jitter_and_hints() -> None:
    assert backoff_s(1, 0.25, 4, lambda: 1.0) == 0.25
    assert backoff_s(3, 0.25, 4, lambda: 0.5) == 0.5
    assert backoff_s(10, 0.25, 4, lambda: 1.0) == 4
    assert duration_s("6m0s") == 360 and duration_s("20ms") == 0.02 and duration_s("x") is None
    assert retry_hint_s({"retry-after": "7"}) == 7
    assert retry_hint_s({"retry-after-ms": "150"}) == 0.15
    resets = {"x-ratelimit-reset-requests": "50ms", "x-ratelimit-reset-tokens": "3s"}
    assert retry_hint_s(resets) == 0.05
    assert retry_hint_s(resets | {"x-ratelimit-remaining-tokens": "0"}) == 3
    assert retry_hint_s({}) is None


@pytest.mark.parametrize(
    ("err", "expected", "name"),
    [
        (UpstreamTimeout("t"), RETRY, "timeout"),
        (UpstreamUnreachable("u"), RETRY, "unreachable"),
        (UpstreamProtocolError("p"), MOVE, "bad_response"),
        (UpstreamStatusError(503, "x"), RETRY, "server_error"),
        (UpstreamStatusError(529, "x"), RETRY, "server_error"),
        (UpstreamStatusError(429, "x"), RETRY, "rate_limited"),
        (UpstreamStatusError(501, "x"), MOVE, "server_error"),
        (UpstreamStatusError(502, "k", code="upstream_auth_failed"), MOVE, "auth"),
        (UpstreamStatusError(400, "x"), FINAL, "client_error"),
        (UpstreamStatusError(422, "x"), FINAL, "client_error"),
        (UpstreamStatusError(400, "x", code="context_length_exceeded"), CONTEXT, "context_window"),
        (UpstreamStatusError(400, "prompt is too long: 300000 tokens"), CONTEXT, "context_window"),
        (UpstreamStatusError(400, "x", code="content_policy_violation"), POLICY, "content_policy"),
        (InvalidRequest("bad"), FINAL, "gateway"),
    ],
)
def test_classification(err: Exception, expected: int, name: str) -> None:
    assert action(err, STATUSES, True) == expected  # type: ignore[arg-type]
    assert error_class(err) == name  # type: ignore[arg-type]


def balancer(strategy: str, weights: tuple[float, ...] = (1, 1, 1)) -> Balancer:
    deployments = [Deployment("p", f"m{i}", "pub") for i in range(len(weights))]
    breakers, budget = Breakers(BreakerConfig()), RetryBudgetConfig()
    slots = [
        Slot(f"p/m{i}", breakers.get(f"p/m{i}"), RetryBudget(budget)) for i in range(len(weights))
    ]
    return Balancer(deployments, weights, slots, strategy)


def test_weighted_order_follows_weights() -> None:
    b = balancer("weighted", (3, 0, 1))
    firsts = [b.order(r / 100)[0].upstream_model for r in range(100)]
    assert firsts.count("m0") == 75 and firsts.count("m2") == 25 and "m1" not in firsts
    assert [d.upstream_model for d in b.order(0.99)] == ["m2", "m0", "m1"]


def test_least_inflight_and_lowest_latency() -> None:
    b = balancer("least_inflight")
    b.slots[0].inflight, b.slots[1].inflight, b.slots[2].inflight = 3, 1, 2
    assert b.order()[0].upstream_model == "m1"
    b = balancer("lowest_latency")
    assert b.order(0.5)[0].upstream_model == "m0"  # unmeasured first
    for slot, ttfb in zip(b.slots, (0.3, 0.1, 0.2), strict=True):
        slot.observe_ttfb(ttfb)
    assert b.order(0.5)[0].upstream_model == "m1"
    b.slots[1].observe_ttfb(1.0)  # 0.1 + 0.3 * 0.9 = 0.37
    assert b.order(0.5)[0].upstream_model == "m2"
