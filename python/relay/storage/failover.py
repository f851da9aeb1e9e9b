"""Limits in Redis that degrade visibly, never silently, when Redis fails.

:class:`FailoverStore` sends every decision to Redis. When a call fails or does not answer
within ``redis.timeout_ms``, it switches (logged once, counted) to what
``limits.on_redis_failure`` says:

- ``local``: this host's store decides, at each limit divided by ``limits.replicas`` (the
  replicas together then let about the configured limit through; a burst is never below 1);
- ``open``: every decision is allowed;
- ``closed``: every decision is refused, ``retry_after_s`` being the probe interval.

While degraded, no call waits on Redis: a probe (``PING``) runs off the request path at most
once per ``probe_interval_s``, started by the next decision (or by :meth:`probe`, for
readiness), and the first one that answers switches back. A Redis problem is never raised to
the caller; invalid limits or costs still are (ValueError), as by every store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from redis.exceptions import RedisError

from relay.storage.limits import CellState, Charge, Decision, Limit, LimitStore
from relay.storage.redis import RedisStore

log = logging.getLogger("relay.limits")

Mode = Literal["local", "open", "closed"]
# What a failing Redis raises: its own errors, socket errors, and our bound on each call.
REDIS_FAILURES = (RedisError, OSError, TimeoutError)
# Scaled limits are cached per limit; limits come from the configuration, so this is a bound
# that a sane configuration never reaches.
_MAX_SCALED = 4096


class FailoverStore:
    """:class:`relay.storage.limits.LimitStore` on Redis, falling back as configured."""

    def __init__(
        self,
        primary: RedisStore,
        local: LimitStore | None,
        mode: Mode = "local",
        replicas: int = 1,
        *,
        probe_interval_s: float = 1.0,
    ) -> None:
        if mode == "local" and local is None:
            raise ValueError("on_redis_failure: local needs a local store")
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.primary = primary
        self.local = local
        self.mode: Mode = mode
        self.replicas = replicas
        self.probe_interval_s = probe_interval_s
        self.degraded = False
        """True while Redis is failing (readiness says ``"redis": "degraded"``)."""
        self.failovers = 0
        """How many times decisions switched away from Redis (for the metrics)."""
        self.recoveries = 0
        """How many times they came back to Redis."""
        self.on_change: Callable[[bool], None] | None = None
        """Told of each switch: True when Redis is lost, False when it answers again."""
        self._last_probe = 0.0
        self._probe: asyncio.Task[bool] | None = None
        self._scaled: dict[Limit, Limit] = {}

    async def take(self, charges: Sequence[Charge]) -> Decision:
        """One decision in Redis, or as ``mode`` says while Redis fails."""
        if not self.degraded:
            try:
                return await self.primary.take(charges)
            except REDIS_FAILURES as exc:
                self._failed(exc)
        else:
            self._maybe_probe()
        if self.mode == "local":
            assert self.local is not None
            return await self.local.take(self._local_charges(charges))
        if self.mode == "open":
            return Decision(True, tuple(CellState(c.limit.burst, 0.0) for c in charges), 0.0)
        wait = self.probe_interval_s
        return Decision(False, tuple(CellState(0.0, wait) for _ in charges), wait)

    async def adjust(self, charges: Sequence[Charge]) -> None:
        """Settle in Redis, or in the local store while Redis fails (``open`` and ``closed``
        have nothing to settle)."""
        if not self.degraded:
            try:
                await self.primary.adjust(charges)
                return
            except REDIS_FAILURES as exc:
                self._failed(exc)
        else:
            self._maybe_probe()
        if self.mode == "local":
            assert self.local is not None
            await self.local.adjust(self._local_charges(charges))

    async def probe(self) -> bool:
        """Ask Redis now (a PING bounded by its timeout, shared by concurrent callers); True
        when decisions go to Redis. For readiness: with no traffic, nothing else would notice
        that Redis failed, or that it is back. A PING that fails switches over as a failed
        decision does (logged once, counted)."""
        if self._probe is None:
            self._probe = asyncio.create_task(self._run_probe())
        return await asyncio.shield(self._probe)

    async def close(self) -> None:
        """Stop a running probe and close the Redis client."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.primary.close()

    def _failed(self, exc: BaseException) -> None:
        self._last_probe = time.monotonic()
        if self.degraded:
            return  # calls in flight when Redis failed: the switch is logged once
        self.degraded = True
        self.failovers += 1
        if self.on_change is not None:
            self.on_change(True)
        what = {
            "local": f"in this host's memory at each limit / {self.replicas}",
            "open": "not at all: every request is allowed",
            "closed": "by refusing every request a limit applies to",
        }[self.mode]
        reason = str(exc) or "no answer in time"
        log.warning(
            "Redis failed (%s: %s); limits are now decided %s until Redis answers again",
            type(exc).__name__,
            reason,
            what,
        )

    def _maybe_probe(self) -> None:
        if self._probe is None and time.monotonic() - self._last_probe >= self.probe_interval_s:
            self._probe = asyncio.create_task(self._run_probe())

    async def _run_probe(self) -> bool:
        try:
            await self.primary.ping()
        except REDIS_FAILURES as exc:
            if not self.degraded:
                self._failed(exc)
            return False
        finally:
            self._last_probe = time.monotonic()
            self._probe = None
        if self.degraded:
            self.degraded = False
            self.recoveries += 1
            log.warning("Redis answers again; limits are decided in Redis")
            if self.on_change is not None:
                self.on_change(False)
        return True

    def _local_charges(self, charges: Sequence[Charge]) -> list[Charge]:
        if self.replicas == 1:
            return list(charges)
        return [Charge(c.key, self._scale(c.limit), c.cost) for c in charges]

    def _scale(self, limit: Limit) -> Limit:
        scaled = self._scaled.get(limit)
        if scaled is None:
            if len(self._scaled) >= _MAX_SCALED:
                self._scaled.clear()
            n = self.replicas
            scaled = Limit(limit.rate / n, limit.period_s, max(1.0, limit.burst / n))
            self._scaled[limit] = scaled
        return scaled
