"""relay._native.gcra: the pure GCRA step."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from relay._native import GcraDecision, NativeError, gcra


def test_burst_then_deny_then_refill() -> None:
    # One request per second, bursts of 3, at t=100.
    tat = 0.0
    for remaining in (2, 1, 0):
        d = gcra(tat, 100.0, 1.0, 3)
        assert d.allowed
        assert d.remaining == remaining
        assert d.retry_after == 0.0
        tat = d.tat
    assert tat == 103.0
    d = gcra(tat, 100.0, 1.0, 3)
    assert not d.allowed
    assert d.tat == tat
    assert d.retry_after == 1.0
    assert d.reset_after == 3.0
    assert d.remaining == 0
    # One second later exactly one more passes.
    d = gcra(tat, 101.0, 1.0, 3)
    assert d.allowed and d.remaining == 0
    # Long idle: fully reset.
    d = gcra(d.tat, 1000.0, 1.0, 3)
    assert (d.allowed, d.tat, d.remaining, d.reset_after) == (True, 1001.0, 2, 1.0)


def test_rounding_does_not_cost_a_burst_slot() -> None:
    # 100 per minute (interval 0.6 s), bursts of 10, at a wall-clock-sized time.
    now, tat = 1.7e9, 0.0
    for i in range(10):
        d = gcra(tat, now, 60 / 100, 10)
        assert d.allowed, i
        assert d.remaining == 9 - i
        tat = d.tat
    assert not gcra(tat, now, 60 / 100, 10).allowed


def test_cost_variants() -> None:
    d = gcra(0.0, 10.0, 1.0, 2, cost=0.5)
    assert d.allowed and d.tat == 10.5 and d.remaining == 1
    peek = gcra(d.tat, 10.0, 1.0, 2, cost=0)
    assert peek.allowed and peek.tat == 10.5 and peek.remaining == 1
    d = gcra(d.tat, 10.0, 1.0, 2, cost=1.5)
    assert d.allowed and d.tat == 12.0 and d.remaining == 0
    d = gcra(d.tat, 10.0, 1.0, 2, cost=0.5)
    assert not d.allowed and d.retry_after == 0.5


def test_cost_above_burst_is_never_allowed() -> None:
    d = gcra(0.0, 10.0, 1.0, 3, cost=4)
    assert not d.allowed
    assert d.retry_after == math.inf
    assert d.tat == 0.0
    assert d.remaining == 3
    assert gcra(0.0, 10.0, 1.0, 3, cost=3).allowed


def test_decision_object() -> None:
    d = gcra(0.0, 10.0, 1.0, 3)
    assert isinstance(d, GcraDecision)
    assert repr(d) == (
        "GcraDecision(allowed=True, tat=11.0, retry_after=0.0, reset_after=1.0, remaining=2)"
    )
    assert "retry_after=inf" in repr(gcra(0.0, 10.0, 1.0, 1, cost=2))
    with pytest.raises(AttributeError):
        d.allowed = False  # type: ignore[misc]
    assert isinstance(d.remaining, int) and isinstance(d.tat, float)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.0, 0.0, 0.0, 1.0), "emission_interval"),
        ((0.0, 0.0, -1.0, 1.0), "emission_interval"),
        ((0.0, 0.0, math.nan, 1.0), "emission_interval"),
        ((0.0, 0.0, 1.0, 0.5), "burst"),
        ((0.0, 0.0, 1.0, math.inf), "burst"),
        ((0.0, 0.0, 1.0, 1.0, -1.0), "cost"),
        ((0.0, math.nan, 1.0, 1.0), "now"),
        ((math.inf, 0.0, 1.0, 1.0), "tat"),
    ],
)
def test_validation(args: tuple[float, ...], match: str) -> None:
    with pytest.raises(NativeError, match=match):
        gcra(*args)


def spec(tat: float, now: float, t: float, burst: float, cost: float) -> tuple[bool, float]:
    """The brief's formula, literally; returns (allowed, tat_after)."""
    tau = t * burst
    new_tat = max(tat, now) + cost * t
    allow_at = new_tat - tau
    if now < allow_at:
        return False, tat
    return True, new_tat


@given(
    st.floats(0, 1e4),
    st.floats(0, 1e4),
    st.floats(1e-3, 100),
    st.floats(1, 100),
    st.floats(0, 120),
)
def test_matches_formula_away_from_the_boundary(
    tat: float, now: float, t: float, burst: float, cost: float
) -> None:
    tau = t * burst
    allow_at = max(tat, now) + cost * t - tau
    assume(abs(allow_at - now) > 1e-6)  # rounding tolerance lives at the boundary
    d = gcra(tat, now, t, burst, cost)
    allowed, tat_after = spec(tat, now, t, burst, cost)
    assert d.allowed == allowed
    assert d.tat == pytest.approx(tat_after)
    assert d.reset_after == pytest.approx(max(d.tat - now, 0.0))
    if allowed:
        assert d.retry_after == 0.0
    elif cost * t > tau + 1e-6:
        assert d.retry_after == math.inf
    elif cost * t > tau - 1e-6:
        # a cost equal to the burst within rounding: the extension's tolerance decides
        assert d.retry_after == math.inf or d.retry_after == pytest.approx(allow_at - now)
    else:
        assert d.retry_after == pytest.approx(allow_at - now)
    want_remaining = max(math.floor((tau - max(d.tat - now, 0.0)) / t + 1e-9), 0)
    assert abs(d.remaining - want_remaining) <= 1
