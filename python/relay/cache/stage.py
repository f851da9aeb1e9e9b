"""The cache stage (after auth, limits and routing's plan, before any provider call) and the
writer that stores a miss's answer after its last byte.

A hit is a :class:`~relay.stage.Reply`: no attempt, ``x-relay-provider: cache``, cost 0 (the
cost the recorded answer had is ``Exchange.cost_saved_usd``). A miss leaves a
:class:`~relay.cache.record.Recording` on the exchange for the recorders and the writer. Every
response of a route the cache serves says ``x-relay-cache: hit | miss | bypass``.
"""

from __future__ import annotations

import logging
import time

from relay.cache.controls import controls
from relay.cache.entry import Entry
from relay.cache.policy import CACHED_ENDPOINTS, Policy
from relay.cache.record import RECORDING, Recording, entry_of, recording
from relay.cache.replay import json_body, once, stream_frames
from relay.cache.store import Cache
from relay.exchange import Deployment, Exchange
from relay.stage import Reply

log = logging.getLogger("relay.cache")

HEADER = "x-relay-cache"
HIT, MISS, BYPASS = ((HEADER, "hit"), (HEADER, "miss"), (HEADER, "bypass"))
_HIT_HEADERS = (("x-relay-attempts", "0"), ("x-relay-cost-usd", f"{0:.8f}"))
# The provider a hit names (x-relay-provider, the ledger).
PROVIDER = "cache"


class CacheStage:
    """Answer from the cache, or start recording (see the module docstring)."""

    __slots__ = ("cache", "policy")

    def __init__(self, policy: Policy, cache: Cache) -> None:
        self.policy = policy
        self.cache = cache

    async def __call__(self, ex: Exchange) -> Reply | None:
        if ex.endpoint not in CACHED_ENDPOINTS:
            return None
        policy = self.policy.of(ex.model)
        if policy.mode == "off" or not self.policy.cacheable(ex, policy):
            self._bypass(ex)
            return None
        read, store, max_age, ttl = controls(ex.headers, policy.ttl_s)
        if not (read or store):
            self._bypass(ex)
            return None
        key = self.policy.key(ex)
        tags = self.policy.tags(ex)
        if read:
            entry = await self.cache.get(key, tags, max_age)
            if entry is not None:
                reply = self._hit(ex, entry)
                if reply is not None:
                    return reply
        ex.cache_hit = False
        self.cache.counted(ex.model, hit=False)
        ex.reply_headers.append(MISS)
        if store:
            state = ex.state
            if state is None:
                state = ex.state = {}
            state[RECORDING] = Recording(key, ttl, tags)
        return None

    def _bypass(self, ex: Exchange) -> None:
        self.cache.bypasses += 1
        ex.reply_headers.append(BYPASS)

    def _hit(self, ex: Exchange, entry: Entry) -> Reply | None:
        try:
            if ex.stream:
                reply = Reply(200, _HIT_HEADERS, stream=once(stream_frames(ex, entry)))
            else:
                reply = Reply(200, _HIT_HEADERS, body=json_body(ex, entry))
        except Exception:  # an entry this version cannot replay: answered by the provider
            log.exception("request %s: a cache entry could not be replayed", ex.request_id)
            return None
        ex.cache_hit = True
        self.cache.counted(ex.model, hit=True)
        ex.cost_usd = 0.0
        ex.cost_saved_usd = entry.cost_usd
        ex.deployment = Deployment(PROVIDER, entry.model, ex.model)
        ex.first_token_at = time.perf_counter()
        ex.reply_headers.append(HIT)
        return reply


class CacheWriter:
    """Store a recorded answer once the client has it whole (a settler)."""

    __slots__ = ("cache", "tool_calls")

    def __init__(self, cache: Cache, *, tool_calls: bool) -> None:
        self.cache = cache
        self.tool_calls = tool_calls

    async def settle(self, ex: Exchange) -> None:
        """Write the entry when the answer may be kept."""
        rec = recording(ex)
        if rec is None:
            return
        del ex.state[RECORDING]  # type: ignore[union-attr]  # written once
        entry = entry_of(ex, rec, tool_calls=self.tool_calls)
        if entry is not None:
            await self.cache.put(rec.key, entry, rec.ttl_s, rec.tags)
