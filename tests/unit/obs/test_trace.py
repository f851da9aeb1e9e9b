"""Trace context without the SDK: ``traceparent`` parsing as the W3C recommendation says, the
context a request keeps, and the headers an attempt sends."""

from __future__ import annotations

import pytest

from relay.exchange import Attempt, Deployment, Endpoint, Exchange
from relay.obs.trace import Tracing, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def exchange(**headers: str) -> Exchange:
    return Exchange("req_1", Endpoint.CHAT, b"", headers)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"00-{TRACE}-{SPAN}-01", (int(TRACE, 16), int(SPAN, 16), True)),
        (f"00-{TRACE}-{SPAN}-00", (int(TRACE, 16), int(SPAN, 16), False)),
        (f" 00-{TRACE}-{SPAN}-03 ", (int(TRACE, 16), int(SPAN, 16), True)),
        # A later version may add fields: the first four are read.
        (f"01-{TRACE}-{SPAN}-01-extra", (int(TRACE, 16), int(SPAN, 16), True)),
    ],
)
def test_valid_traceparents(value: str, expected: tuple[int, int, bool]) -> None:
    assert parse_traceparent(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero ids are invalid
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",  # lowercase hex only
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN[:-1]}x-01",
    ],
)
def test_invalid_traceparents_start_a_new_trace(value: str) -> None:
    assert parse_traceparent(value) is None
    context = Tracing().context(exchange(traceparent=value))
    assert context.parent_id == 0 and context.trace_id != int(TRACE, 16)


def test_the_context_continues_the_clients_trace_and_names_each_attempt() -> None:
    tracing = Tracing()
    ex = exchange(traceparent=f"00-{TRACE}-{SPAN}-01", tracestate="k=v")
    context = tracing.context(ex)
    assert tracing.context(ex) is context  # one per request
    assert (context.trace_id, context.parent_id, context.sampled) == (
        int(TRACE, 16),
        int(SPAN, 16),
        True,
    )
    deployment = Deployment("p", "m", "m")
    first, second = Attempt(deployment, 0), Attempt(deployment, 1)
    sent: list[dict[str, str]] = []
    for attempt in (first, second):
        headers: dict[str, str] = {}
        tracing(ex, attempt, headers)
        sent.append(headers)
    ids = [context.attempt_spans[0], context.attempt_spans[1]]
    assert len(set(ids)) == 2 and context.span_id not in ids
    assert sent == [
        {"traceparent": f"00-{TRACE}-{span:016x}-01", "tracestate": "k=v"} for span in ids
    ]


def test_sampling_of_new_traces_follows_the_ratio() -> None:
    assert all(Tracing(1.0).context(exchange()).sampled for _ in range(50))
    never = Tracing(0.0)
    contexts = [never.context(exchange()) for _ in range(50)]
    assert not any(c.sampled for c in contexts)
    headers: dict[str, str] = {}
    ex = exchange()
    never(ex, Attempt(Deployment("p", "m", "m")), headers)
    assert headers["traceparent"].endswith("-00")  # the provider is told not to record
    # A client's decision wins over the ratio, both ways.
    assert never.context(exchange(traceparent=f"00-{TRACE}-{SPAN}-01")).sampled
