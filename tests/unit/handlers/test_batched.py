"""Batched taps: every exchange reaches every tap exactly once, in the listed order, when its
batch fills, after the delay, or when asked (a scrape, the worker's stop)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from relay.exchange import Endpoint, Exchange
from relay.handlers import batched
from relay.handlers.batched import BatchedTaps
from relay.handlers.common import Pipeline


class Recorder:
    """A tap that notes (its name, the request id) of each exchange it sees."""

    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name = name
        self.calls = calls

    def on_finish(self, ex: Exchange) -> None:
        self.calls.append((self.name, ex.request_id))


class Failing:
    def on_finish(self, ex: Exchange) -> None:
        raise RuntimeError(f"broken on {ex.request_id}")


def exchange(rid: str) -> Exchange:
    return Exchange(rid, Endpoint.CHAT, b"", {})


def test_a_full_batch_runs_at_once_each_tap_over_the_batch_in_order() -> None:
    calls: list[tuple[str, str]] = []
    taps = BatchedTaps((Recorder("a", calls), Recorder("b", calls)), batch=3, delay_s=60)

    async def main() -> None:
        for rid in ("r1", "r2"):
            taps.add(exchange(rid))
        assert calls == [] and taps.pending == 2
        taps.add(exchange("r3"))  # fills the batch: run before add returns
        assert taps.pending == 0

    asyncio.run(main())
    assert calls == [("a", "r1"), ("a", "r2"), ("a", "r3"), ("b", "r1"), ("b", "r2"), ("b", "r3")]


def test_a_batch_that_does_not_fill_runs_after_the_delay_once() -> None:
    calls: list[tuple[str, str]] = []
    taps = BatchedTaps((Recorder("a", calls),), batch=100, delay_s=0.02)

    async def main() -> list[tuple[str, str]]:
        taps.add(exchange("r1"))
        taps.add(exchange("r2"))
        await asyncio.sleep(0.005)
        before = list(calls)
        await asyncio.sleep(0.1)
        return before

    assert asyncio.run(main()) == []
    assert calls == [("a", "r1"), ("a", "r2")]


def test_run_empties_the_batch_and_cancels_its_timer() -> None:
    calls: list[tuple[str, str]] = []
    taps = BatchedTaps((Recorder("a", calls),), batch=100, delay_s=0.02)

    async def main() -> None:
        taps.add(exchange("r1"))
        taps.run()  # a scrape, say
        taps.run()  # nothing waits: nothing runs
        await asyncio.sleep(0.06)  # the cancelled timer runs nothing either
        taps.add(exchange("r2"))  # a new timer for the new batch
        await asyncio.sleep(0.06)

    asyncio.run(main())
    assert calls == [("a", "r1"), ("a", "r2")]


def test_a_failing_tap_is_logged_and_every_other_call_still_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str]] = []
    taps = BatchedTaps((Failing(), Recorder("b", calls)), batch=2, delay_s=60)

    async def main() -> None:
        taps.add(exchange("r1"))
        taps.add(exchange("r2"))

    with caplog.at_level(logging.ERROR, logger="relay"):
        asyncio.run(main())
    assert calls == [("b", "r1"), ("b", "r2")]
    failures = [r.getMessage() for r in caplog.records if "tap Failing failed" in r.getMessage()]
    assert failures == ["tap Failing failed for request r1", "tap Failing failed for request r2"]


def test_run_all_runs_every_batcher_of_the_worker() -> None:
    calls: list[tuple[str, str]] = []
    old = BatchedTaps((Recorder("old", calls),), batch=100, delay_s=60)
    new = BatchedTaps((Recorder("new", calls),), batch=100, delay_s=60)

    async def main() -> None:
        old.add(exchange("r1"))
        new.add(exchange("r2"))
        batched.run_all()

    asyncio.run(main())
    assert sorted(calls) == [("new", "r2"), ("old", "r1")]
    assert old.pending == new.pending == 0


def test_the_pipeline_runs_its_own_taps_at_once_and_batches_the_others() -> None:
    calls: list[tuple[str, str]] = []
    pipeline = Pipeline(
        (), (), (Recorder("now", calls),), (), settle_timeout_s=1, max_body=1, body_timeout_s=1,
        batched_taps=(Recorder("later", calls),),
    )  # fmt: skip
    assert pipeline.batched is not None

    async def main() -> list[tuple[str, str]]:
        ex = exchange("r1")
        await pipeline.finish(ex)
        await pipeline.finish(ex)  # finished already: no tap sees it twice
        at_once = list(calls)
        assert pipeline.batched is not None
        pipeline.batched.run()
        return at_once

    assert asyncio.run(main()) == [("now", "r1")]
    assert calls == [("now", "r1"), ("later", "r1")]
    # Without batched taps there is no batcher at all.
    assert (
        Pipeline((), (), (), (), settle_timeout_s=1, max_body=1, body_timeout_s=1).batched is None
    )
