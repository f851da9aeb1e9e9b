"""Budgets: calendar periods in UTC, cells that hold a budget exactly for a whole period (tiny
costs included), a fresh cell each period, one alert per period and budget, and the spend
rebuilt from the ledger (real SQLite and PostgreSQL, the real shared-memory store)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.admin.access import CLI
from relay.admin.models import KeyCreate, TenantCreate
from relay.admin.store import AdminStore
from relay.config.model import RedisConfig
from relay.errors import RateLimited
from relay.exchange import Endpoint, Exchange, Limits, Principal
from relay.ledger.records import DAY_S, RequestRow
from relay.limits.budget import HORIZON_S, BudgetRule, budget_charge, period_of
from relay.limits.budget_rebuild import budget_charges, charge_empty, rebuild_budgets
from relay.limits.budget_watch import BudgetWatch
from relay.limits.rule import Ask, Meter, spend_units
from relay.limits.stage import Reservation, refusal
from relay.storage.limits import Charge, Decision
from relay.storage.memory import SharedMemoryStore
from relay.storage.redis import RedisStore
from tests.services.redis import RedisServer
from tests.unit.ledger.test_database import opened, request_row


def at(text: str) -> float:
    """Unix seconds of an ISO time in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    """The rule's clock (Unix seconds), moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ClockedStore:
    """The shared-memory store deciding at the test's clock (its own ``now`` argument)."""

    def __init__(self, store: SharedMemoryStore, clock: Clock) -> None:
        self.store, self.clock = store, clock

    async def take(self, charges: Sequence[Charge]) -> Decision:
        return await self.store.take(charges, now=self.clock.now - 1.7e9)

    async def adjust(self, charges: Sequence[Charge]) -> None:
        await self.store.adjust(charges, now=self.clock.now - 1.7e9)


@pytest.fixture
def shm() -> Iterator[SharedMemoryStore]:
    store = SharedMemoryStore.create(f"relay-test-{os.getpid()}-{secrets.token_hex(4)}", 4096)
    yield store
    store.unlink()


def principal(key_budget: float | None, tenant_budget: float | None, **kw: object) -> Principal:
    key_kw = {k[4:]: v for k, v in kw.items() if k.startswith("key_")}
    tenant_kw = {k[7:]: v for k, v in kw.items() if k.startswith("tenant_")}
    return Principal(
        tenant="acme",
        key_id="key_1",
        tenant_id="ten_1",
        key_prefix="gw-sk-abcdefgh",
        key_limits=Limits(budget_usd=key_budget, **key_kw),  # type: ignore[arg-type]
        tenant_limits=Limits(budget_usd=tenant_budget, **tenant_kw),  # type: ignore[arg-type]
    )


def exchange(p: Principal) -> Exchange:
    ex = Exchange("req_1", Endpoint.CHAT, b"{}", {})
    ex.principal = p
    return ex


def test_periods_are_calendar_aligned_in_utc() -> None:
    assert period_of("month", at("2026-12-31T23:59:59.999")).label == "2026-12"
    january = period_of("month", at("2027-01-01T00:00:00"))
    assert (january.label, january.start, january.end) == (
        "2027-01",
        at("2027-01-01T00:00:00"),
        at("2027-02-01T00:00:00"),
    )
    day = period_of("day", at("2026-12-03T13:45:00"))
    assert (day.label, day.start, day.end) == (
        "2026-12-03",
        at("2026-12-03T00:00:00"),
        at("2026-12-04T00:00:00"),
    )
    assert period_of("day", at("2028-02-29T23:00:00")).end == at("2028-03-01T00:00:00")
    assert period_of("total", at("2030-01-01T00:00:00")).label == "total"
    with pytest.raises(ValueError, match="budget_period: expected one of day, month, total"):
        period_of("week", 0.0)


def test_the_key_and_its_tenant_are_charged_each_in_its_period_cell() -> None:
    clock = Clock(at("2026-12-03T10:00:00"))
    rule = BudgetRule(clock)
    p = principal(2.0, 50.0, key_budget_period="day")
    charges = rule.charges(exchange(p), Ask(100, 0.25))
    assert [(m.charge.key, m.meter, m.scope) for m in charges] == [
        ("k:key_1:usd:2026-12-03", Meter.SPEND, "key"),
        ("t:ten_1:usd:2026-12", Meter.SPEND, "tenant"),
    ]
    assert [m.charge.cost for m in charges] == [spend_units(0.25)] * 2
    assert [m.renews_at for m in charges] == [at("2026-12-04T00:00:00"), at("2027-01-01T00:00:00")]
    total = rule.charges(exchange(principal(None, 5.0, tenant_budget_period="total")), Ask(1, 0.0))
    assert [m.charge.key for m in total] == ["t:ten_1:usd:total"]
    assert rule.charges(exchange(principal(None, None)), Ask(1, 1.0)) == ()


def test_a_budget_holds_exactly_for_its_whole_period_then_renews(shm: SharedMemoryStore) -> None:
    """$1 a month: 0.6 + 0.4 pass, nothing more all month (the cell does not drain), and
    the next month starts a fresh cell."""
    clock = Clock(at("2026-12-01T00:00:00"))
    rule, store = BudgetRule(clock), ClockedStore(shm, clock)
    p = exchange(principal(None, 1.0))

    async def take(usd: float) -> bool:
        return (await store.take([m.charge for m in rule.charges(p, Ask(1, usd))])).allowed

    async def main() -> None:
        assert await take(0.6)
        assert not await take(0.5)
        assert await take(0.4)
        for day in ("2026-12-02T00:00", "2026-12-15T12:00", "2026-12-31T23:59:59"):
            clock.now = at(day)
            assert not await take(0.000001), day
        clock.now = at("2027-01-01T00:00:00")
        assert await take(1.0)
        assert not await take(0.000001)

    asyncio.run(main())


def test_tiny_costs_are_not_lost(shm: SharedMemoryStore) -> None:
    """Charges of $0.000002 count whole: five fit a budget of $0.00001, and eight add
    $0.000016 to a budget of $1,000 spent to $999.9 (a cell's time is large there)."""
    clock = Clock(at("2026-12-01T00:00:00"))
    rule, store = BudgetRule(clock), ClockedStore(shm, clock)

    async def passed(p: Exchange, usd: float, times: int) -> int:
        ok = 0
        for _ in range(times):
            charges = [m.charge for m in rule.charges(p, Ask(1, usd))]
            ok += (await store.take(charges)).allowed
        return ok

    async def spent(p: Exchange) -> float:
        (budget,) = rule.budgets(p.principal)
        return budget.spent_usd((await store.take([budget.peek])).cells[0].reset_after_s)

    async def main() -> None:
        small = exchange(principal(None, 0.00001))
        assert await passed(small, 0.000002, 8) == 5
        clock.now = at("2026-12-20T00:00:00")
        big = principal(1000.0, None)
        big.key_id = "key_big"
        assert await passed(exchange(big), 999.9, 1) == 1
        before = await spent(exchange(big))
        assert await passed(exchange(big), 0.000002, 8) == 8
        assert await spent(exchange(big)) - before == pytest.approx(0.000016, rel=1e-6)

    asyncio.run(main())


def test_cells_are_valid_for_any_budget_and_zero_admits_next_to_nothing(
    shm: SharedMemoryStore,
) -> None:
    period = period_of("total", at("2099-12-31T23:00:00"))  # the longest drain compensated
    for budget in (0.0, 1e-9, 1e-6, 0.5, 1e9):
        charge = budget_charge("k:x:usd:total", budget, period, at("2099-12-31T23:00:00"), 1e-6)
        assert charge.limit.burst >= 1.0 and charge.limit.emission_interval * 1e6 * max(
            budget, 1e-6
        ) == pytest.approx(HORIZON_S)

    async def main() -> None:
        clock = Clock(at("2026-12-01T00:00:00"))
        rule, store = BudgetRule(clock), ClockedStore(shm, clock)
        zero = exchange(principal(0.0, None))
        priced = await store.take([m.charge for m in rule.charges(zero, Ask(1, 0.0000011))])
        assert not priced.allowed and priced.retry_after_s == float("inf")
        assert (await store.take([m.charge for m in rule.charges(zero, Ask(1, 1e-6))])).allowed
        assert not (await store.take([m.charge for m in rule.charges(zero, Ask(1, 1e-9))])).allowed

    asyncio.run(main())


def test_one_alert_per_period_and_budget_across_workers(
    shm: SharedMemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers (two watches on one store) see the tenant cross 50%: one warning; the
    next month, once again."""
    clock = Clock(at("2026-12-10T00:00:00"))
    rule = BudgetRule(clock)
    store = ClockedStore(shm, clock)
    counted: list[str] = []
    workers = [
        BudgetWatch(rule, store, counted.append),  # type: ignore[arg-type]
        BudgetWatch(BudgetRule(clock), store, counted.append),  # type: ignore[arg-type]
    ]
    p = exchange(principal(None, 10.0, tenant_budget_alert_ratio=0.5))

    async def spend(usd: float) -> None:
        await store.adjust([m.charge for m in rule.charges(p, Ask(1, usd))])
        for watch in workers:
            await watch.settle(p)

    async def main() -> None:
        await spend(4.0)
        assert sum(w.alerts for w in workers) == 0
        await spend(1.5)
        await spend(1.0)
        clock.now = at("2027-01-02T00:00:00")
        await spend(4.9)
        assert sum(w.alerts for w in workers) == 1
        await spend(0.2)

    caplog.set_level(logging.WARNING, "relay.limits")
    asyncio.run(main())
    alerts = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert len(alerts) == 2, alerts
    assert counted == ["tenant", "tenant"]
    assert "tenant default/acme (ten_1)" in alerts[0] and "2026-12" in alerts[0]
    assert "$5.500000 of its budget of $10.000000" in alerts[0] and "2027-01" in alerts[1]


def test_cells_of_past_periods_are_emptied(shm: SharedMemoryStore) -> None:
    clock = Clock(at("2026-12-03T10:00:00"))
    rule, store = BudgetRule(clock), ClockedStore(shm, clock)
    watch = BudgetWatch(rule, store)  # type: ignore[arg-type]
    p = exchange(principal(5.0, None, key_budget_period="day"))
    old = rule.charges(p, Ask(1, 0.0))[0].charge

    async def main() -> None:
        await store.adjust([Charge(old.key, old.limit, spend_units(3.0))])
        await watch.settle(p)
        assert (await store.take([old])).cells[0].reset_after_s > 0
        clock.now = at("2026-12-04T00:00:01")
        await watch.settle(p)
        assert (await store.take([old])).cells[0].reset_after_s == 0

    asyncio.run(main())


def test_spend_is_rebuilt_from_the_ledger_once(database_url: str, shm: SharedMemoryStore) -> None:
    """This month's ledger spend of a tenant and a key (not last month's) charges their cells;
    a second rebuild (Redis kept the cells) changes nothing."""
    now = at("2026-12-20T12:00:00")
    today = int(now // DAY_S)

    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        admin = AdminStore(db)
        tenant = await admin.create_tenant(CLI, TenantCreate(name="acme", budget_usd=10.0))
        key = await admin.create_key(
            CLI, KeyCreate(tenant_id=tenant.id, budget_usd=3.0, budget_period="day")
        )
        assert (key.budget_period, tenant.budget_period, tenant.budget_alert_ratio) == (
            "day",
            "month",
            0.8,
        )
        rows = [
            _row("a", today, "acme", key.prefix, 1.25),
            _row("b", today, "acme", key.prefix, 0.000002),
            _row("c", today - 5, "acme", None, 2.0),  # this month, not today
            _row("d", today - 25, "acme", key.prefix, 7.0),  # last month
        ]
        await db.write_ledger(rows, [])
        assert await rebuild_budgets(db, shm, now=now) == 2
        assert await rebuild_budgets(db, shm, now=now) == 0
        await db.close()
        clock = Clock(now)
        rule = BudgetRule(clock)
        p = principal(3.0, 10.0, key_budget_period="day")
        p.key_id, p.tenant_id = key.id, tenant.id
        budgets = rule.budgets(p)
        seen = await shm.take([b.peek for b in budgets])
        spent = [b.spent_usd(c.reset_after_s) for b, c in zip(budgets, seen.cells, strict=True)]
        assert spent == pytest.approx([1.250002, 3.250002], rel=1e-9, abs=1e-9)

    asyncio.run(main())


def _row(rid: str, day: int, tenant: str, prefix: str | None, cost: float) -> RequestRow:
    return request_row(rid, day=day, tenant=tenant, cost=cost)._replace(
        key_prefix=prefix, key_id=None
    )


def test_a_spent_budget_says_when_it_renews(shm: SharedMemoryStore) -> None:
    """The 429 of a spent monthly budget names it and its renewal (the next month, not the
    cell's drain); a ``total`` budget does not renew; a reservation above the whole budget
    says to lower max_tokens."""
    now = time.time()
    rule = BudgetRule()

    def refused(p: Principal, usd: float) -> RateLimited:
        charges = rule.charges(exchange(p), Ask(1, usd))
        decision = asyncio.run(shm.take([m.charge for m in charges]))
        assert not decision.allowed
        return refusal(charges, decision, Ask(1, usd))[1]

    month = principal(None, 2.0)
    month.tenant_id = "ten_month"
    asyncio.run(shm.adjust([m.charge for m in rule.charges(exchange(month), Ask(1, 2.0))]))
    err = refused(month, 0.01)
    renews = period_of("month", now).end - now
    assert (err.type, err.code) == ("insufficient_quota", "insufficient_quota")
    assert err.message.startswith("this tenant's budget ($2) is spent; it renews in ")
    assert abs(int(dict(err.headers)["retry-after"]) - renews) < 60
    total = principal(3.0, None, key_budget_period="total")
    total.key_id = "key_total"
    asyncio.run(shm.adjust([m.charge for m in rule.charges(exchange(total), Ask(1, 3.0))]))
    err = refused(total, 0.01)
    assert err.message == "this key's budget ($3, budget_period total) is spent"
    assert dict(err.headers)["retry-after"] == "86400"
    fresh = principal(1.0, None)
    fresh.key_id = "key_fresh"
    err = refused(fresh, 1.5)
    assert "estimated cost ($1.500000) is more than this key's whole budget ($1)" in err.message


def test_redis_keeps_its_cells_and_replicas_rebuild_a_lost_one_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two replicas starting at once on a Redis without the cell charge it once; a later
    start finds it and charges nothing (the rebuild is skipped for cells Redis holds)."""
    now = time.time()

    async def main() -> None:
        db = await opened(f"sqlite:///{tmp_path / 'relay.db'}")
        await db.migrate()
        tenant = await AdminStore(db).create_tenant(CLI, TenantCreate(name="r", budget_usd=10.0))
        await db.write_ledger([_row("a", int(now // DAY_S), "r", None, 4.0)], [])
        charges = await budget_charges(db, now)
        await db.close()
        config = RedisConfig(enabled=True, address=redis_server.address, timeout_ms=2000)
        replicas = [RedisStore.from_config(config) for _ in range(2)]
        try:
            first = await asyncio.gather(
                *(charge_empty(r, charges, 1, once=True) for r in replicas)
            )
            assert sorted(first) == [0, 1]
            assert await charge_empty(replicas[0], charges, 1, once=True) == 0
            p = principal(None, 10.0)
            p.tenant_id = tenant.id
            (budget,) = BudgetRule().budgets(p)
            seen = await replicas[0].take([budget.peek])
            assert budget.spent_usd(seen.cells[0].reset_after_s) == pytest.approx(4.0, rel=1e-6)
        finally:
            for r in replicas:
                await r.close()

    asyncio.run(main())


class CountingStore(ClockedStore):
    """Counts the decisions (a watch's look at its cells is one)."""

    takes = 0

    async def take(self, charges: Sequence[Charge]) -> Decision:
        self.takes += 1
        return await super().take(charges)


def test_the_watch_looks_only_when_an_alert_may_be_due(shm: SharedMemoryStore) -> None:
    """After the settlement the watch looks at the budget cells (one decision) only when the
    reservation left a cell at or past its alert, or the request cost more than it reserved."""
    clock = Clock(at("2026-12-10T00:00:00"))
    rule = BudgetRule(clock)
    store = CountingStore(shm, clock)
    watch = BudgetWatch(rule, store)  # type: ignore[arg-type]
    ex = exchange(principal(None, 10.0, tenant_budget_alert_ratio=0.5))
    [metered] = rule.charges(ex, Ask(1, 0.25))
    assert metered.alert_at == pytest.approx(spend_units(5.0), rel=1e-4)

    async def settle(headroom_usd: float, cost: float) -> int:
        before = store.takes
        ex.limits = Reservation((metered,), spend_units(headroom_usd))
        ex.cost_usd = cost
        await watch.settle(ex)
        return store.takes - before

    async def main() -> None:
        # $0.25 reserved, $1 below the alert: a settlement that adds less cannot reach it.
        assert await settle(headroom_usd=1.0, cost=0.20) == 0
        assert await settle(headroom_usd=1.0, cost=1.10) == 0
        assert await settle(headroom_usd=1.0, cost=1.30) == 1  # $1.05 more: look
        assert await settle(headroom_usd=-0.01, cost=0.25) == 1  # the reservation passed it
        # At it with the reservation, but the settlement gave back more than that: below.
        assert await settle(headroom_usd=0.0, cost=0.10) == 0

    asyncio.run(main())
