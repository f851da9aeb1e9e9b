"""relay._native.SharedLimitTable: GCRA cells in POSIX shared memory, checked against a Python
model (tests/native/shared_limiter_reference.py) and against LocalLimiter."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_limiter_reference import Cells

from relay._native import LimitTableFull, LocalLimiter, NativeError, SharedLimitTable


@dataclass(frozen=True)
class Limit:
    rate: float
    period_s: float
    burst: float


@dataclass(frozen=True)
class Charge:
    """What the table reads of a charge (relay.storage.limits.Charge has the same shape)."""

    key: str
    limit: Limit
    cost: float = 1.0


def charge(key: str, rate: float, period: float, burst: float, cost: float = 1.0) -> Charge:
    return Charge(key, Limit(rate, period, burst), cost)


Answer = tuple[bool, float, list[tuple[float, float]]]


def answer(allowed: bool, cells: tuple[tuple[float, float], ...], retry_after: float) -> Answer:
    return allowed, retry_after, list(cells)


def take(table: SharedLimitTable, charges: list[Charge], now: float | None = None) -> Answer:
    """``table.take`` answering ``(allowed, retry_after, [(remaining, reset_after), ...])``."""
    return table.take(charges, lambda r, a: (r, a), answer, now)


def fresh_name() -> str:
    return f"relay-test-{os.getpid()}-{secrets.token_hex(4)}"


@pytest.fixture
def table() -> Iterator[SharedLimitTable]:
    name = fresh_name()
    t = SharedLimitTable.create(name, 4096)
    yield t
    SharedLimitTable.unlink(name)


def test_create_attach_unlink() -> None:
    name = fresh_name()
    t = SharedLimitTable.create(name, 100)
    try:
        assert (t.name, t.slots, len(t)) == (name, 128, 0)
        assert repr(t) == f'SharedLimitTable("{name}", slots=128)'
        assert Path(f"/dev/shm/{name}").stat().st_mode & 0o777 == 0o600
        with pytest.raises(FileExistsError, match=name):
            SharedLimitTable.create(name, 100)
        other = SharedLimitTable.attach(name)
        assert take(other, [charge("k", 1, 1, 2)], now=5.0)[0]
        assert t.tat("k") == 6.0 and len(t) == 1
    finally:
        assert SharedLimitTable.unlink(name)
    assert not SharedLimitTable.unlink(name)
    assert not Path(f"/dev/shm/{name}").exists()
    with pytest.raises(FileNotFoundError):
        SharedLimitTable.attach(name)
    # The mappings outlive the name.
    assert take(t, [charge("k", 1, 1, 2)], now=5.0)[0]
    assert not take(other, [charge("k", 1, 1, 2)], now=5.0)[0]


@pytest.mark.parametrize("name", ["", "a/b", "..", "with space", "x" * 201])
def test_bad_names(name: str) -> None:
    with pytest.raises(NativeError, match="shared memory name"):
        SharedLimitTable.create(name, 10)


def test_bad_sizes() -> None:
    for slots in (0, -1, 2**31):
        with pytest.raises(OSError, match="slots"):
            SharedLimitTable.create(fresh_name(), slots)


def test_attach_refuses_what_is_not_a_table() -> None:
    name = fresh_name()
    other = shared_memory.SharedMemory(name=name, create=True, size=4096)
    try:
        with pytest.raises(NativeError, match="not a limit table"):
            SharedLimitTable.attach(name)
    finally:
        other.close()
        other.unlink()


def test_decides_like_local_limiter(table: SharedLimitTable) -> None:
    local = LocalLimiter()
    steps = [("a", 10, 60, 3, 1, 1000.0)] * 4 + [
        ("b", 1, 1, 10, 7, 1000.0),
        ("b", 1, 1, 10, 4, 1000.0),
        ("a", 10, 60, 3, 1, 1005.9),
        ("a", 10, 60, 3, 1, 1006.0),
        ("c", 0.2, 1, 1, 1, 1006.0),
        ("c", 0.2, 1, 1, 1, 1010.0),
        ("c", 0.2, 1, 1, 1, 1011.0),
    ]
    for key, rate, period, burst, cost, now in steps:
        want = local.check(key, rate, period, burst, cost, now)
        allowed, retry_after, cells = take(table, [charge(key, rate, period, burst, cost)], now)
        assert allowed == want.allowed
        assert retry_after == (0.0 if want.allowed else want.retry_after)
        assert cells == [(float(want.remaining), want.reset_after)]
        assert table.tat(key) == local.check(key, rate, period, burst, 0, now).tat


def test_all_or_nothing(table: SharedLimitTable) -> None:
    assert take(table, [charge("small", 1, 1, 2, 2)], now=50.0)[0]
    before = (table.tat("big"), table.tat("small"))
    allowed, retry_after, cells = take(
        table,
        [charge("big", 1, 1, 100, 5), charge("small", 1, 1, 2), charge("other", 1, 1, 3, 4)],
        now=50.0,
    )
    assert not allowed
    assert (table.tat("big"), table.tat("small"), table.tat("other")) == (*before, None)
    assert cells == [(100.0, 0.0), (0.0, 2.0), (3.0, 0.0)]
    assert retry_after == math.inf  # "other" can never take 4 of a burst of 3
    allowed, retry_after, _ = take(
        table, [charge("big", 1, 1, 100, 5), charge("small", 1, 1, 2)], now=50.5
    )
    assert (allowed, retry_after) == (False, 0.5)


def test_adjust(table: SharedLimitTable) -> None:
    tpm = Limit(100, 60, 100)  # 0.6 s per token
    assert take(table, [Charge("t", tpm, 50)], now=100.0)[0]
    table.adjust([Charge("t", tpm, -20)], now=100.0)
    assert table.tat("t") == pytest.approx(118.0)
    table.adjust([Charge("t", tpm, -1000)], now=100.0)
    assert table.tat("t") == 100.0  # never below empty
    table.adjust([Charge("t", tpm, 150)], now=100.0)  # past the burst
    assert table.tat("t") == pytest.approx(190.0)
    allowed, retry_after, _ = take(table, [Charge("t", tpm, 1)], now=100.0)
    assert not allowed and retry_after == pytest.approx(30.6)
    table.adjust([Charge("absent", tpm, -5)], now=100.0)
    assert table.tat("absent") is None


def test_invalid_charges_raise_and_charge_nothing(table: SharedLimitTable) -> None:
    for bad in (
        charge("x", 0, 1, 1),
        charge("x", 1, -1, 1),
        charge("x", 1, 1, 0.5),
        charge("x", 1, 1, 1, -1),
        charge("x", 1, 1, 1, math.nan),
    ):
        with pytest.raises(NativeError):
            take(table, [charge("a", 1, 1, 5), bad], now=0.0)
    with pytest.raises(NativeError, match="now"):
        take(table, [charge("a", 1, 1, 5)], now=math.inf)
    with pytest.raises(AttributeError):
        take(table, [object()])  # type: ignore[list-item]
    assert len(table) == 0


def test_a_full_table() -> None:
    name = fresh_name()
    t = SharedLimitTable.create(name, 32)
    try:
        for i in range(32):
            assert take(t, [charge(f"k{i}", 1, 60, 5)], now=0.0)[0]
        with pytest.raises(LimitTableFull, match="full"):
            take(t, [charge("k0", 1, 60, 5), charge("late", 1, 60, 5)], now=1.0)
        assert t.tat("k0") == 60.0  # the first charge was undone
        assert t.full_refusals == 1
        assert issubclass(LimitTableFull, NativeError)
        # Once a cell has reset, the new key takes its slot.
        assert take(t, [charge("late", 1, 60, 5)], now=60.5)[0]
        assert (len(t), t.evictions, t.tat("late")) == (32, 1, 120.5)
    finally:
        SharedLimitTable.unlink(name)


KEYS = st.sampled_from(["a", "b", "c"])
LIMITS = st.sampled_from([(1.0, 1.0, 1.0), (2.0, 1.0, 5.0), (10.0, 60.0, 3.0), (0.5, 1.0, 2.0)])
TAKE_COST = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 7.0])
ADJUST_COST = st.sampled_from([-10.0, -2.0, -0.5, 0.5, 1.0, 4.0])
OPS = st.lists(
    st.tuples(
        st.sampled_from(["take", "adjust"]),
        st.sampled_from([0.0, 0.0, 0.25, 1.0, 3.0]),  # time passing before the op
        st.lists(st.tuples(KEYS, LIMITS, TAKE_COST, ADJUST_COST), min_size=1, max_size=4),
    ),
    max_size=25,
)


Spec = tuple[str, tuple[float, float, float], float, float]


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_matches_the_reference(ops: list[tuple[str, float, list[Spec]]]) -> None:
    name = fresh_name()
    t = SharedLimitTable.create(name, 64)
    model, now = Cells(), 1000.0
    try:
        for op, gap, specs in ops:
            now += gap
            if op == "take":
                raw = [(k, r, p, b, c) for k, (r, p, b), c, _ in specs]
                assert take(t, [charge(*c) for c in raw], now) == model.take(raw, now)
            else:
                raw = [(k, r, p, b, a) for k, (r, p, b), _, a in specs]
                t.adjust([charge(*c) for c in raw], now)
                model.adjust(raw, now)
            for key in "abc":
                assert t.tat(key) == model.tats.get(key), key
    finally:
        SharedLimitTable.unlink(name)
