"""Circuit breakers, one per deployment: skip a deployment that keeps failing, without a call.

Closed: calls pass and outcomes are counted in a sliding window (ten buckets). When the window
holds at least ``min_requests`` outcomes and failures are ``failure_rate`` of them or more, the
breaker opens: calls are refused for ``cooldown_s``. Then it is half-open: ``half_open_probes``
calls go through; a success closes it (with a fresh window), a failure opens it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from relay.config.model import BreakerConfig

log = logging.getLogger("relay.routing")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
_BUCKETS = 10

# (deployment key, old state, new state): metrics, logs.
Listener = Callable[[str, str, str], None]


class Breaker:
    """The breaker of one deployment. Not thread-safe: one per worker, on its event loop."""

    __slots__ = (
        "_bucket",
        "_bucket_s",
        "_calls",
        "_fails",
        "_notify",
        "_probes",
        "config",
        "enabled",
        "key",
        "open_until",
        "state",
        "total_calls",
        "total_fails",
    )

    def __init__(self, key: str, config: BreakerConfig, notify: Listener | None = None) -> None:
        self.key = key
        self.config = config
        self.enabled = config.enabled
        self.state = CLOSED
        self.open_until = 0.0
        self.total_calls = 0
        self.total_fails = 0
        self._notify = notify
        self._probes = 0
        self._bucket_s = config.window_s / _BUCKETS
        self._bucket = 0
        self._calls = [0] * _BUCKETS
        self._fails = [0] * _BUCKETS

    def configure(self, config: BreakerConfig) -> None:
        """New settings, the state kept (see :meth:`Breakers.configure`)."""
        window_changed = config.window_s != self.config.window_s
        self.config = config
        self.enabled = config.enabled
        if window_changed:
            self._bucket_s = config.window_s / _BUCKETS
            self._bucket = 0
            self._reset()

    def allow(self, now: float) -> bool:
        """May a call go to this deployment now? A half-open breaker counts the probe."""
        state = self.state
        if state is CLOSED:
            return True
        if state is OPEN:
            if now < self.open_until:
                return False
            self._change(HALF_OPEN)
            self._probes = 0
        if self._probes < self.config.half_open_probes:
            self._probes += 1
            return True
        return False

    def retry_in(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        return max(self.open_until - now, 0.0) if self.state is OPEN else 0.0

    def record(self, ok: bool, now: float) -> None:
        """The outcome of a call that :meth:`allow` let through."""
        if not self.enabled:
            return
        state = self.state
        if state is HALF_OPEN:
            self._probes = max(self._probes - 1, 0)
            if ok:
                self._reset()
                self._change(CLOSED)
            else:
                self._open(now)
            return
        if state is OPEN:  # a call started before the breaker opened
            return
        bucket = int(now / self._bucket_s)
        if bucket != self._bucket:
            self._roll(bucket)
        index = bucket % _BUCKETS
        self._calls[index] += 1
        self.total_calls += 1
        if not ok:
            self._fails[index] += 1
            self.total_fails += 1
            config = self.config
            if (
                self.total_calls >= config.min_requests
                and self.total_fails >= config.failure_rate * self.total_calls
            ):
                self._open(now)

    def release(self) -> None:
        """A call ended without an outcome (the client left): free its probe slot."""
        if self.state is HALF_OPEN:
            self._probes = max(self._probes - 1, 0)

    def _open(self, now: float) -> None:
        self.open_until = now + self.config.cooldown_s
        failures, calls = self.total_fails, self.total_calls
        self._reset()
        self._change(OPEN, f" ({failures} of {calls} calls failed)" if calls else "")

    def _roll(self, bucket: int) -> None:
        for step in range(1, min(bucket - self._bucket, _BUCKETS) + 1):
            index = (self._bucket + step) % _BUCKETS
            self.total_calls -= self._calls[index]
            self.total_fails -= self._fails[index]
            self._calls[index] = self._fails[index] = 0
        self._bucket = bucket

    def _reset(self) -> None:
        self._calls = [0] * _BUCKETS
        self._fails = [0] * _BUCKETS
        self.total_calls = self.total_fails = 0

    def _change(self, state: str, why: str = "") -> None:
        old, self.state = self.state, state
        if state is OPEN:
            log.warning(
                "circuit of %s: %s -> open for %.1fs%s", self.key, old, self.config.cooldown_s, why
            )
        else:
            log.info("circuit of %s: %s -> %s", self.key, old, state)
        if self._notify is not None:
            self._notify(self.key, old, state)


class Breakers:
    """Every deployment's breaker, by key (``provider/upstream-model``, or the provider's name
    for models sent on under their own name). Metrics read :meth:`states` or subscribe."""

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self._breakers: dict[str, Breaker] = {}
        self._listeners: list[Listener] = []

    def configure(self, config: BreakerConfig) -> None:
        """Settings of a hot reload: every breaker takes them and keeps its state (an open
        breaker stays open until its time is up); a new window size starts an empty window."""
        if config == self.config:
            return
        self.config = config
        for breaker in self._breakers.values():
            breaker.configure(config)

    def get(self, key: str) -> Breaker:
        """The breaker of ``key``, created closed on first use."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = Breaker(key, self.config, self._changed)
        return breaker

    def states(self) -> dict[str, str]:
        """``closed``, ``open`` or ``half_open`` per deployment key."""
        return {key: breaker.state for key, breaker in self._breakers.items()}

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(key, old, new)`` on every state change."""
        self._listeners.append(listener)

    def _changed(self, key: str, old: str, new: str) -> None:
        for listener in self._listeners:
            try:
                listener(key, old, new)
            except Exception:
                log.exception("breaker listener failed")
