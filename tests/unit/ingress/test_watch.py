"""The request watch: one timer per loop starts each request's disconnect watch when its
WATCH_AFTER_S has passed; requests over before then are never watched."""

from __future__ import annotations

import asyncio

from relay.exchange import Endpoint, Exchange
from relay.ingress.watch import WATCH_AFTER_S, RequestWatch


class Proto:
    """A client that leaves ``leaves_after`` seconds after it is first watched (never: None)."""

    def __init__(self, leaves_after: float | None) -> None:
        self.leaves_after = leaves_after
        self.watched = 0

    async def client_disconnect(self) -> None:
        self.watched += 1
        if self.leaves_after is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(self.leaves_after)


async def _request(proto: Proto, lasts: float) -> Exchange:
    ex = Exchange("req", Endpoint.CHAT, b"", {})
    task = asyncio.current_task()
    assert task is not None
    watch = RequestWatch(proto, ex, task, 60.0)
    try:
        await asyncio.sleep(lasts)
    except asyncio.CancelledError:
        pass
    finally:
        watch.cancel()
    return ex


def test_only_requests_outliving_the_delay_are_watched_and_a_leaver_is_cancelled() -> None:
    async def main() -> None:
        quick = [Proto(None) for _ in range(5)]
        slow, leaver = Proto(None), Proto(0.01)
        results = await asyncio.gather(
            *(_request(p, 0.001 * i) for i, p in enumerate(quick)),
            _request(slow, WATCH_AFTER_S * 3),
            _request(leaver, 30.0),  # cancelled when its client leaves, long before
        )
        assert [p.watched for p in quick] == [0] * 5
        assert slow.watched == 1 and not results[-2].client_gone
        assert leaver.watched == 1 and results[-1].client_gone
        # Later requests on the same loop are watched as well (the queue's timer re-arms).
        again = Proto(0.01)
        assert (await _request(again, 30.0)).client_gone

    asyncio.run(asyncio.wait_for(main(), 10))
