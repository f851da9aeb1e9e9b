"""The retry budget of one deployment: attempts that go back to a deployment a request has
already tried are limited to a share of the requests it recently received, so that an
outage does not multiply the traffic sent to a failing provider.

The budget is scoped per deployment, as Envoy scopes its retry budget per cluster. A request's
first attempt on a deployment (its first attempt, a failover to another target, a fallback to
another model) counts as a request of that deployment and is never refused: it adds no traffic
to a deployment that already failed. A further attempt on the same deployment is a retry,
allowed while that deployment's retries, counting it, stay below
``ratio * requests + min_retries`` over a sliding window (ten buckets of ``window_s / 10``).
Under a full outage a burst of N requests reaching a deployment thus makes fewer than
``(1 + ratio) * N + min_retries`` calls to it per window.
"""

from __future__ import annotations

from relay.config.model import RetryBudgetConfig

_BUCKETS = 10


class RetryBudget:
    """One per deployment slot and worker; not thread-safe (the worker's event loop only)."""

    __slots__ = (
        "_bucket",
        "_bucket_s",
        "_requests",
        "_retries",
        "_warned_at",
        "min_retries",
        "ratio",
        "requests",
        "retries",
        "window_s",
    )

    def __init__(self, config: RetryBudgetConfig) -> None:
        self.ratio = config.ratio
        self.min_retries = config.min_retries
        self.window_s = config.window_s
        self._bucket_s = config.window_s / _BUCKETS
        self._bucket = 0
        self._requests = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS
        self.requests = 0
        self.retries = 0
        # When a refusal was last logged.
        self._warned_at: float | None = None

    def request(self, now: float) -> None:
        """A request made its first attempt on this deployment."""
        bucket = int(now / self._bucket_s)
        if bucket != self._bucket:
            self._roll(bucket)
        self._requests[bucket % _BUCKETS] += 1
        self.requests += 1

    def try_retry(self, now: float) -> bool:
        """May a request try this deployment once more? Counts the retry when it may."""
        bucket = int(now / self._bucket_s)
        if bucket != self._bucket:
            self._roll(bucket)
        if self.retries + 1 >= self.ratio * self.requests + self.min_retries:
            return False
        self._retries[bucket % _BUCKETS] += 1
        self.retries += 1
        return True

    def should_warn(self, now: float) -> bool:
        """True at most once per window while retries are refused (one log line, not one
        per request of an outage)."""
        warned = self._warned_at
        if warned is not None and now - warned < self.window_s:
            return False
        self._warned_at = now
        return True

    def _roll(self, bucket: int) -> None:
        for step in range(1, min(bucket - self._bucket, _BUCKETS) + 1):
            index = (self._bucket + step) % _BUCKETS
            self.requests -= self._requests[index]
            self.retries -= self._retries[index]
            self._requests[index] = self._retries[index] = 0
        self._bucket = bucket
