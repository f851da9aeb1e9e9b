"""The pipeline's ends: a stage's streamed answer counts as an open stream while it is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from relay.exchange import Endpoint, Exchange
from relay.handlers.common import Inflight, Pipeline
from relay.stage import Reply


class Proto:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Proto:
        return self

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


def test_a_stage_stream_is_an_open_stream_until_it_ends() -> None:
    inflight = Inflight()
    seen: list[int] = []

    async def frames() -> AsyncIterator[bytes]:
        for n in range(2):
            seen.append(inflight.counts()[1])
            yield b"data: %d\n\n" % n

    class Cached:
        async def __call__(self, ex: Exchange) -> Reply | None:
            return Reply(200, stream=frames())

    pipeline = Pipeline(
        (), (Cached(),), (), (), settle_timeout_s=1, max_body=1024, body_timeout_s=1,
        inflight=inflight,
    )  # fmt: skip
    proto: Any = Proto()
    ex = Exchange("r", Endpoint.CHAT, b"", {})
    assert asyncio.run(pipeline.answered_by_stage(ex, proto))
    assert seen == [1, 1] and proto.sent == [b"data: 0\n\n", b"data: 1\n\n"]
    assert inflight.streams == 0 and ex.status == 200
