"""GCRA cells in Redis: the one home of the Redis client, its pool and its timeouts.

Each decision is one EVALSHA of ``gcra.lua``: every charge of a ``take`` is read, decided
and written inside one script, so it is atomic against every other worker and replica on the
same Redis, and costs one round trip however many limits apply. The script computes with
Redis' own clock (``TIME``), so replicas whose clocks disagree still agree on every cell, and
gives every key it writes an expiry at the moment its cell is empty again.

Every call is bounded by ``timeout_s`` (connecting, waiting for a pooled connection, the round
trip); a call that runs out is cancelled, its connection closed, and the error raised:
:class:`relay.storage.failover.FailoverStore` turns Redis errors into the configured degraded
behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from relay.config.model import RedisConfig
from relay.native import gcra
from relay.storage.limits import CellState, Charge, Decision

# TATs are stored as seconds since this instant (2026-12-01T00:00:00Z), not since 1970: GCRA's
# allowance for float rounding grows with the magnitude of the times (1e-12 of them, see
# rust/src/gcra.rs), and small times keep it at microseconds. Changing it reinterprets every
# stored cell: never change it.
EPOCH_S = 1_796_083_200
PREFIX = "relay:"
# Connections per worker: a decision holds one for one round trip (tens of microseconds), so a
# few dozen serve thousands of decisions a second; more callers wait for one (within the timeout).
MAX_CONNECTIONS = 64

SCRIPT = resources.files("relay.storage").joinpath("gcra.lua").read_text(encoding="utf-8")
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


class RedisReplyError(RedisError):
    """Redis answered the script with something it never returns (another program's key?)."""


def connect(config: RedisConfig) -> Redis:
    """A client on a bounded pool for ``config``: no retries (the caller decides what a
    failure means), connecting bounded by ``timeout_ms``."""
    timeout_s = config.timeout_ms / 1000
    options: dict[str, Any] = {
        "max_connections": MAX_CONNECTIONS,
        "timeout": timeout_s,  # waiting for a free pooled connection
        "socket_connect_timeout": timeout_s,
        # No socket_timeout: RedisStore bounds each whole call with one asyncio timeout, which
        # closes the connection it cancels; redis-py's own send timeout costs a task per call.
        "socket_timeout": None,
        "retry": Retry(NoBackoff(), 0),
        "client_name": "relay",
        "password": config.password or None,
        "db": config.db,
    }
    if "://" in config.address:
        # A URL's own password and database win over the separate keys.
        pool = BlockingConnectionPool.from_url(config.address, **options)
    else:
        host, _, port = config.address.rpartition(":")
        pool = BlockingConnectionPool(host=host.strip("[]"), port=int(port), **options)
    return Redis.from_pool(pool)


class RedisStore:
    """:class:`relay.storage.limits.LimitStore` on one Redis (or one Redis Cluster slot per
    decision: the keys of one decision must share a hash tag there)."""

    def __init__(self, client: Redis, *, timeout_s: float, prefix: str = PREFIX) -> None:
        if not prefix.startswith(PREFIX):
            raise ValueError(f"prefix must start with {PREFIX!r}, got {prefix!r}")
        self.client = client
        self.timeout_s = timeout_s
        self.prefix = prefix
        # Connections kept between decisions, taken from (and counted by) the client's pool.
        # Borrowing from the pool for each call costs some 30 us of CPU (its lock, its
        # condition, a readiness check of the socket); a decision's whole call costs ~35 us
        # on a kept connection. A connection that fails is closed and handed back to the pool,
        # and so is every kept one: after a Redis restart they are all dead.
        self._idle: list[AbstractConnection] = []
        # Calls at once: at most half of what the pool holds, so a call that finds no kept
        # connection always gets one from the pool (kept ones are not returned to it), and
        # the other half stays for other users of the client.
        self._slots = asyncio.Semaphore(max(client.connection_pool.max_connections // 2, 1))

    @classmethod
    def from_config(cls, config: RedisConfig) -> RedisStore:
        """A store on a new client for ``config`` (close it with :meth:`close`)."""
        return cls(connect(config), timeout_s=config.timeout_ms / 1000)

    async def take(self, charges: Sequence[Charge], *, now: float | None = None) -> Decision:
        """Charge every one of ``charges`` if all fit, else none, in one script call.

        ``now`` (seconds since :data:`EPOCH_S`) replaces Redis' clock, for tests only (keys
        are then written without an expiry: Redis expires them by its own clock).
        Raises ValueError for an invalid limit or cost, RedisError or TimeoutError when Redis
        fails or does not answer within ``timeout_s``.
        """
        if not charges:
            return Decision(True, (), 0.0)
        reply = await self._run("take", charges, now)
        try:
            allowed = int(reply[0]) == 1
            retry_after = float(reply[1])
            cells = tuple(
                CellState(float(reply[i]), float(reply[i + 1]))
                for i in range(2, 2 + 2 * len(charges), 2)
            )
        except (TypeError, ValueError, IndexError) as exc:
            raise RedisReplyError(f"unexpected reply of gcra.lua: {reply!r:.200}") from exc
        return Decision(allowed, cells, retry_after)

    async def adjust(self, charges: Sequence[Charge], *, now: float | None = None) -> None:
        """Give back (negative cost) or charge over (positive cost), in one script call."""
        if charges:
            await self._run("adjust", charges, now)

    async def ping(self) -> None:
        """Raise unless Redis answers a PING within ``timeout_s``."""
        async with asyncio.timeout(self.timeout_s):
            await self._call("PING")

    async def close(self) -> None:
        """Close the client and its pool (kept connections included)."""
        await self._release_idle()
        await self.client.aclose()

    async def _run(self, op: str, charges: Sequence[Charge], now: float | None) -> Any:
        keys: list[str] = []
        args: list[str | float] = [op, "" if now is None else float(now), EPOCH_S]
        for charge in charges:
            interval = _validated_interval(charge, give_back=op == "adjust")
            keys.append(self.prefix + charge.key)
            args += (interval, charge.limit.burst, charge.cost)
        async with asyncio.timeout(self.timeout_s):
            try:
                return await self._call("EVALSHA", SCRIPT_SHA, len(keys), *keys, *args)
            except NoScriptError:
                # A restarted (or flushed) Redis forgot the script: load it once, run it again.
                await self._call("SCRIPT", "LOAD", SCRIPT)
                return await self._call("EVALSHA", SCRIPT_SHA, len(keys), *keys, *args)

    async def _call(self, *command: str | float | int) -> Any:
        """One command on a kept connection (else one from the pool); the caller bounds it
        in time. Redis' own error answers (``NOSCRIPT``) leave the connection usable."""
        async with self._slots:
            return await self._call_held(command)

    async def _call_held(self, command: tuple[str | float | int, ...]) -> Any:
        # Kept connections may all be dropped while this call runs (_release_idle replaces
        # the list): a connection goes back to ``self._idle`` as it is then.
        idle = self._idle
        conn = idle.pop() if idle else None
        if conn is not None and not _open(conn):
            await self._discard(conn)  # Redis closed it (a restart): so it did the others
            conn = None
        if conn is None:
            pool = self.client.connection_pool
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(conn.pack_command(*command), False)
            reply = await conn.read_response()
        except ResponseError:
            self._idle.append(conn)
            raise
        except BaseException:
            # Cut off mid-call (timeout, cancellation) or failed: its state is unknown.
            await self._discard(conn)
            raise
        self._idle.append(conn)
        return reply

    async def _discard(self, conn: AbstractConnection) -> None:
        pool = self.client.connection_pool
        with contextlib.suppress(Exception):
            await conn.disconnect(nowait=True)
        with contextlib.suppress(Exception):
            await pool.release(conn)
        await self._release_idle()

    async def _release_idle(self) -> None:
        idle, self._idle = self._idle, []
        pool = self.client.connection_pool
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            with contextlib.suppress(Exception):
                await pool.release(conn)


def _open(conn: AbstractConnection) -> bool:
    """Is a kept connection still open? The event loop marks its reader at EOF when Redis
    closes it: no system call, unlike the pool's check (a read attempt) on every borrow."""
    reader = getattr(conn, "_reader", None)
    return isinstance(reader, asyncio.StreamReader) and not reader.at_eof()


def _validated_interval(charge: Charge, *, give_back: bool) -> float:
    """The emission interval of ``charge``'s limit, checked with the native rules (the same
    the shared-memory backend applies) before anything is sent."""
    limit = charge.limit
    if not (0 < limit.rate < float("inf") and 0 < limit.period_s < float("inf")):
        raise ValueError(
            f"{charge.key}: rate and period_s must be finite numbers > 0, "
            f"got {limit.rate} per {limit.period_s} s"
        )
    interval = limit.emission_interval
    cost = abs(charge.cost) if give_back else charge.cost
    try:
        gcra(0.0, 0.0, interval, limit.burst, cost)
    except ValueError as exc:
        raise ValueError(f"{charge.key}: {exc}") from None
    return interval
