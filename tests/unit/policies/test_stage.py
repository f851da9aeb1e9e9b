"""The policies stage and its dispatchers: only the request's chain runs, hooks see one event
at a time in order, and requests without a chain (or not inspected) are left alone."""

from __future__ import annotations

import asyncio
from typing import Any

from relay.exchange import Endpoint, Exchange
from relay.policies.registry import Policies
from relay.policies.stage import PoliciesStage, PolicyAnswers, PolicyStreams, PolicyTaps


class Recorder:
    """A policy with every hook, recording what it saw."""

    def __init__(self, name: str, double: bool = False) -> None:
        self.name = name
        self.double = double
        self.seen: list[Any] = []
        self.answer_hook = self
        self.stream_hook = self
        self.tap = self

    def on_request(self, ex: Exchange) -> None:
        self.seen.append(("request", ex.model))

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        self.seen.append(("answer", body))
        return body + self.name.encode()

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        self.seen.append(("event", event))
        return event * 2 if self.double else event

    def on_end(self, ex: Exchange) -> bytes:
        self.seen.append(("end",))
        return b"data: held-" + self.name.encode() + b"\n\n"

    def on_finish(self, ex: Exchange) -> None:
        self.seen.append(("finish",))


def setup() -> tuple[Policies, Recorder, Recorder]:
    a, b = Recorder("a", double=True), Recorder("b")
    policies = Policies({"a": a, "b": b}, ["a"], {"m": ["b"]}, {})
    return policies, a, b


def exchange(model: str, endpoint: Endpoint = Endpoint.CHAT, method: str = "POST") -> Exchange:
    ex = Exchange("r", endpoint, b"{}", {})
    ex.model, ex.method = model, method
    return ex


def test_hooks_run_in_order_one_event_at_a_time() -> None:
    policies, a, b = setup()
    ex = exchange("m")
    asyncio.run(PoliciesStage(policies)(ex))
    assert a.seen == b.seen == [("request", "m")]
    assert PolicyAnswers().on_answer(ex, b"{}") == b"{}ab"
    streams = PolicyStreams()
    out = streams.on_event(ex, b"data: 1\n\n")
    assert out == b"data: 1\n\ndata: 1\n\n"
    assert b.seen[-2:] == [("event", b"data: 1\n\n"), ("event", b"data: 1\n\n")]
    # What a hook releases at the end passes the later hooks, before their own release.
    end = streams.on_end(ex)
    assert end == b"data: held-a\n\ndata: held-b\n\n"
    PolicyTaps().on_finish(ex)
    assert a.seen[-1] == b.seen[-1] == ("finish",)


def test_other_requests_are_untouched() -> None:
    policies, a, b = setup()
    for ex in (
        exchange("m", Endpoint.PASSTHROUGH),
        exchange("m", Endpoint.COUNT_TOKENS),
        exchange("m", Endpoint.RESPONSES, "GET"),
    ):
        asyncio.run(PoliciesStage(policies)(ex))
        assert ex.state is None
    assert a.seen == b.seen == []
    plain = exchange("m")  # no stage ran: nothing active
    assert PolicyAnswers().on_answer(plain, b"x") == b"x"
    assert PolicyStreams().on_event(plain, b"data: 1\n\n") == b"data: 1\n\n"
    assert PolicyStreams().on_end(plain) == b""
    only_global = exchange("other")
    asyncio.run(PoliciesStage(policies)(only_global))
    assert a.seen == [("request", "other")] and b.seen == []
