"""The retry budget: attempts after a request's first are limited to a share of recent
requests, so that an outage does not multiply the traffic sent to a failing provider.

Over a sliding window (ten buckets of ``window_s / 10``), a further attempt is allowed when
the retries, counting it, stay below ``ratio * requests + min_retries``. Under a full outage a
burst of N requests thus makes fewer than ``(1 + ratio) * N + min_retries`` upstream calls per
window.
"""

from __future__ import annotations

from relay.config.model import RetryBudgetConfig

_BUCKETS = 10


class RetryBudget:
    """One per worker; not thread-safe (the worker's event loop only)."""

    __slots__ = (
        "_bucket",
        "_bucket_s",
        "_requests",
        "_retries",
        "min_retries",
        "ratio",
        "requests",
        "retries",
    )

    def __init__(self, config: RetryBudgetConfig) -> None:
        self.ratio = config.ratio
        self.min_retries = config.min_retries
        self._bucket_s = config.window_s / _BUCKETS
        self._bucket = 0
        self._requests = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS
        self.requests = 0
        self.retries = 0

    def request(self, now: float) -> None:
        """A request made its first attempt."""
        bucket = int(now / self._bucket_s)
        if bucket != self._bucket:
            self._roll(bucket)
        self._requests[bucket % _BUCKETS] += 1
        self.requests += 1

    def try_retry(self, now: float) -> bool:
        """May a request make one more attempt? Counts it when it may."""
        bucket = int(now / self._bucket_s)
        if bucket != self._bucket:
            self._roll(bucket)
        if self.retries + 1 >= self.ratio * self.requests + self.min_retries:
            return False
        self._retries[bucket % _BUCKETS] += 1
        self.retries += 1
        return True

    def _roll(self, bucket: int) -> None:
        for step in range(1, min(bucket - self._bucket, _BUCKETS) + 1):
            index = (self._bucket + step) % _BUCKETS
            self.requests -= self._requests[index]
            self.retries -= self._retries[index]
            self._requests[index] = self._retries[index] = 0
        self._bucket = bucket
