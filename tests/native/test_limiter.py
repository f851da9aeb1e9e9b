"""relay._native.LocalLimiter and monotonic."""

from __future__ import annotations

import math
import threading
import time

import pytest

from relay._native import LocalLimiter, NativeError, monotonic


def test_monotonic_is_time_monotonic() -> None:
    a = time.monotonic()
    m = monotonic()
    b = time.monotonic()
    assert a - 0.01 <= m <= b + 0.01
    assert monotonic() >= m


def test_burst_and_refill_with_explicit_now() -> None:
    lim = LocalLimiter()
    # 10 requests per minute => one every 6 s, bursts of 3.
    passed = [lim.check("k", 10, 60, 3, now=1000.0).allowed for _ in range(5)]
    assert passed == [True, True, True, False, False]
    d = lim.check("k", 10, 60, 3, now=1000.0)
    assert d.retry_after == pytest.approx(6.0)
    assert d.reset_after == pytest.approx(18.0)
    assert not lim.check("k", 10, 60, 3, now=1005.9).allowed
    assert lim.check("k", 10, 60, 3, now=1006.0).allowed
    assert not lim.check("k", 10, 60, 3, now=1006.0).allowed
    # Another key has its own budget.
    assert lim.check("other", 10, 60, 3, now=1000.0).remaining == 2
    assert len(lim) == 2


def test_cost() -> None:
    lim = LocalLimiter()
    assert lim.check("k", 1, 1, 10, cost=7, now=0.0).remaining == 3
    assert not lim.check("k", 1, 1, 10, cost=4, now=0.0).allowed
    assert lim.check("k", 1, 1, 10, cost=3, now=0.0).allowed
    # A peek (cost 0) reports without changing anything.
    peek = lim.check("k", 1, 1, 10, cost=0, now=5.0)
    assert peek.allowed and peek.remaining == 5
    assert lim.check("k", 1, 1, 10, cost=5, now=5.0).allowed
    # More than the burst can never pass, and is not stored.
    d = lim.check("new", 1, 1, 10, cost=11, now=0.0)
    assert not d.allowed and d.retry_after == float("inf")
    assert len(lim) == 1


def test_refund() -> None:
    lim = LocalLimiter()
    for _ in range(2):
        assert lim.check("k", 1, 1, 2, now=50.0).allowed
    assert not lim.check("k", 1, 1, 2, now=50.0).allowed
    lim.refund("k", 1, 1, 1, now=50.0)
    assert lim.check("k", 1, 1, 2, now=50.0).allowed
    assert not lim.check("k", 1, 1, 2, now=50.0).allowed
    # A refund never goes below "now": no credit beyond a full reset.
    lim.refund("k", 1, 1, 100, now=50.0)
    assert lim.check("k", 1, 1, 2, now=50.0).remaining == 1
    lim.refund("absent", 1, 1, 1, now=50.0)
    assert len(lim) == 1


def test_reset_and_purge() -> None:
    lim = LocalLimiter()
    lim.check("a", 1, 1, 5, now=10.0)  # tat 11
    lim.check("b", 1, 1, 5, cost=3, now=10.0)  # tat 13
    lim.check("c", 1, 1, 5, now=10.0)  # tat 11
    assert len(lim) == 3
    lim.reset("c")
    lim.reset("never-seen")
    assert len(lim) == 2
    assert lim.purge(now=10.5) == 0
    assert lim.purge(now=11.0) == 1  # a is fully reset (tat <= now)
    assert len(lim) == 1
    assert lim.purge(now=100.0) == 1
    assert len(lim) == 0
    # Default clock: a fresh key's tat is in the future, so nothing goes.
    lim.check("d", 1, 3600, 1)
    assert lim.purge() == 0


def test_default_clock() -> None:
    lim = LocalLimiter()
    before = monotonic()
    d = lim.check("k", 1, 3600, 2)
    after = monotonic()
    assert d.allowed
    assert before + 3600 <= d.tat <= after + 3600


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -1}, "rate"),
        ({"period": 0}, "period"),
        ({"burst": 0.5}, "burst"),
        ({"cost": -1}, "cost"),
        ({"now": float("nan")}, "now"),
    ],
)
def test_validation(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"rate": 1, "period": 1, "burst": 1, "cost": 1, "now": 0.0}
    args.update(kwargs)
    with pytest.raises(NativeError, match=match):
        LocalLimiter().check("k", **args)
    with pytest.raises(NativeError, match="rate"):
        LocalLimiter().refund("k", 0, 1, 1)


@pytest.mark.parametrize("explicit_now", [False, True])
def test_threads_never_overrun(explicit_now: bool) -> None:
    lim = LocalLimiter()
    burst, threads, per_thread = 25, 8, 50
    passed = 0
    count_lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        nonlocal passed
        start.wait()
        mine = 0
        for _ in range(per_thread):
            # A tiny rate: no refill during the test.
            now = 500.0 if explicit_now else None
            if lim.check("shared", 1e-6, 1, burst, now=now).allowed:
                mine += 1
        with count_lock:
            passed += mine

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert passed == burst
    assert not lim.check("shared", 1e-6, 1, burst).allowed


@pytest.mark.parametrize(
    ("rate", "period", "burst", "cost", "now"),
    [
        (1, 1e200, 1e200, 1e200, 0.0),  # interval * burst and cost * interval overflow
        (1, 1e200, 1e200, 1, 0.0),  # interval * burst overflows
        (1, 1e300, 1, 1e10, 0.0),  # cost * interval overflows
        (1e-200, 1e200, 1, 1, 0.0),  # the interval itself overflows
        (1, 1e300, 2, 1, 1.7976931348623157e308),  # the new TAT overflows
        (1, 1, math.inf, 1, 0.0),
        (1, 1, math.nan, 1, 0.0),
        (1, 1, 2, math.inf, 0.0),
        (1, 1, 2, math.nan, 0.0),
        (math.nan, 1, 2, 1, 0.0),
        (1, math.inf, 2, 1, 0.0),
        (1, 1, 2, 1, math.inf),
        (1, 1, 2, 1, -math.inf),
    ],
)
def test_bad_parameters_raise_and_never_corrupt_a_key(
    rate: float, period: float, burst: float, cost: float, now: float
) -> None:
    lim = LocalLimiter()
    assert lim.check("k", 1, 1, 2, now=0.0).allowed
    with pytest.raises(NativeError):
        lim.check("k", rate, period, burst, cost=cost, now=now)
    with pytest.raises(NativeError):
        lim.check("fresh", rate, period, burst, cost=cost, now=now)
    assert len(lim) == 1
    # The key still works: its TAT was not touched.
    d = lim.check("k", 1, 1, 2, now=0.0)
    assert d.allowed and d.tat == 2.0
    assert not lim.check("k", 1, 1, 2, now=0.0).allowed


def test_max_keys_bounds_the_map() -> None:
    assert LocalLimiter().max_keys == 100_000
    lim = LocalLimiter(max_keys=1000)
    for i in range(20_000):
        lim.check(f"key-{i}", 1, 1, 10, now=i * 0.001)
        assert len(lim) <= 1000
    with pytest.raises(NativeError, match="max_keys"):
        LocalLimiter(max_keys=0)
    with pytest.raises(NativeError, match="max_keys"):
        LocalLimiter(max_keys=-5)


def test_max_keys_purges_reset_keys_before_evicting() -> None:
    lim = LocalLimiter(max_keys=100)
    for i in range(100):  # k0..k49 are reset by now=10, k50..k99 are not
        lim.check(f"k{i}", 1, 1, 5, now=0.0 if i < 50 else 10.0)
    assert len(lim) == 100
    lim.check("new", 1, 1, 5, now=10.0)
    assert len(lim) == 51
    # The live keys kept their state: k50 is still 1 s ahead.
    assert lim.check("k50", 1, 1, 5, now=10.0).remaining == 3


def test_max_keys_evicts_the_keys_closest_to_reset() -> None:
    lim = LocalLimiter(max_keys=64)
    for i in range(64):  # TAT of k{i} is 1000 + i: none is reset at now=0
        lim.check(f"k{i}", 1, 1, 2000, cost=1000 + i, now=0.0)
    lim.check("new", 1, 1, 2000, cost=1, now=0.0)
    assert len(lim) == 60  # evicted down to 64 - 1 - 64 // 16, then "new"
    # k0..k4 (smallest TAT) were evicted: they start afresh with a full burst.
    assert lim.check("k0", 1, 1, 2000, cost=0, now=0.0).remaining == 2000
    assert lim.check("k5", 1, 1, 2000, cost=0, now=0.0).remaining == 2000 - 1005
