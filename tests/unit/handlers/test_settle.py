"""Settlers after the last byte: in order, each isolated, bounded together; one that waits
for nothing costs no timer and no task."""

from __future__ import annotations

import asyncio
import logging

import pytest

from relay.exchange import Endpoint, Exchange
from relay.handlers.common import Pipeline


class Recorder:
    def __init__(self, name: str, log: list[str], *, wait: float = 0.0, fail: bool = False):
        self.name, self.log, self.wait, self.fail = name, log, wait, fail

    async def settle(self, ex: Exchange) -> None:
        if self.wait:
            await asyncio.sleep(self.wait)
        if self.fail:
            raise RuntimeError(f"{self.name} failed")
        self.log.append(self.name)


def pipeline(*settlers: Recorder, timeout: float = 1.0) -> Pipeline:
    return Pipeline((), (), (), settlers, settle_timeout_s=timeout, max_body=1, body_timeout_s=1)


def exchange() -> Exchange:
    return Exchange("r", Endpoint.CHAT, b"", {})


def test_in_order_each_isolated_waiting_or_not(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    settlers = (
        Recorder("a", log),
        Recorder("b", log, fail=True),
        Recorder("c", log, wait=0.01),
        Recorder("d", log, wait=0.01, fail=True),
        Recorder("e", log),
    )
    with caplog.at_level(logging.ERROR, "relay"):
        asyncio.run(pipeline(*settlers).finish(exchange()))
    assert log == ["a", "c", "e"]
    assert [r.exc_info[1].args[0] for r in caplog.records if r.exc_info and r.exc_info[1]] == [
        "b failed",
        "d failed",
    ]


def test_together_bounded_then_abandoned(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    slow = (Recorder("a", log, wait=0.05), Recorder("b", log, wait=10.0), Recorder("c", log))

    async def run() -> bool:
        await pipeline(*slow, timeout=0.2).finish(exchange())
        task = asyncio.current_task()
        return task is not None and task.cancelling() == 0

    with caplog.at_level(logging.WARNING, "relay"):
        assert asyncio.run(run())  # the task is not left cancelled
    assert log == ["a"]
    assert "settling took over 0.2s and was abandoned" in caplog.text


def test_a_cancellation_from_outside_goes_through() -> None:
    log: list[str] = []

    async def run() -> None:
        task = asyncio.create_task(pipeline(Recorder("a", log, wait=10.0)).finish(exchange()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert log == []
