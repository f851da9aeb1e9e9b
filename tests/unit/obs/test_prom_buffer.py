"""Buffered observations write what prometheus-client's own calls would have written."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from relay.obs.prom_buffer import Buffers

BUCKETS = (0.01, 0.1, 1.0, 10.0)
# Below, on and above bounds, past the last one, and 0.
VALUES = [0.0, 0.005, 0.01, 0.010001, 0.1, 0.5, 1.0, 9.99, 10.0, 10.5, 1e9]


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text format without the ``_created`` samples (times of creation differ)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def families(registry: CollectorRegistry) -> tuple[Histogram, Counter]:
    hist = Histogram("h_seconds", "h", ["kind"], registry=registry, buckets=BUCKETS)
    count = Counter("c", "c", ["kind"], registry=registry)
    return hist, count


def test_flushed_histogram_and_counter_match_direct_calls() -> None:
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    hist, count = families(direct)
    for value in VALUES:
        hist.labels("a").observe(value)
        count.labels("a").inc(value)
    bhist, bcount = families(buffered)
    buffers = Buffers()
    hbuf = buffers.histogram(bhist, BUCKETS, "a")
    cbuf = buffers.counter(bcount, "a")
    for value in VALUES[:5]:
        hbuf.observe(value)
        cbuf.add(value)
    buffers.flush()  # twice, with observations in between: deltas, never counted twice
    for value in VALUES[5:]:
        hbuf.observe(value)
        cbuf.add(value)
    buffers.flush()
    buffers.flush()
    assert exposition(buffered) == exposition(direct)
    assert len(buffers) == 2


def test_nothing_is_written_before_a_flush() -> None:
    registry = CollectorRegistry()
    hist, count = families(registry)
    buffers = Buffers()
    hbuf = buffers.histogram(hist, BUCKETS, "a")
    cbuf = buffers.counter(count, "a")
    hbuf.observe(0.5)
    cbuf.add()
    assert registry.get_sample_value("h_seconds_count", {"kind": "a"}) == 0
    assert registry.get_sample_value("c_total", {"kind": "a"}) == 0
    buffers.flush()
    assert registry.get_sample_value("h_seconds_count", {"kind": "a"}) == 1
    assert registry.get_sample_value("h_seconds_bucket", {"kind": "a", "le": "0.1"}) == 0
    assert registry.get_sample_value("h_seconds_bucket", {"kind": "a", "le": "1.0"}) == 1
    assert registry.get_sample_value("c_total", {"kind": "a"}) == 1
