"""A watch per request, on one timer per loop, sees what the request's own awaits cannot: a
client that left, and a body that stopped arriving.

Granian's disconnect signal costs about 30 us of CPU per request (a native watcher and a
cross-thread wake-up), more than all of Relay's own policy; an ``asyncio.timeout`` around the
body read cost about 10 us more (measured with py-spy at 1,500 requests/s). Requests that are
over within :data:`WATCH_AFTER_S` pay for neither: an entry in the loop's queue of watches. A
longer one (every real model call) is watched for a disconnect from then on, so a client that
leaves is noticed at most this late and its upstream dropped; if its body is still being read
then, the body's deadline (``server.body_timeout_s`` from the start) is armed.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any

from relay.exchange import Exchange

WATCH_AFTER_S = 0.05
# A watch whose time comes this close to the loop's clock starts now (a loop's timers may fire
# a little early by its own clock: uvloop's clock counts milliseconds).
_SLACK_S = 0.001


class RequestWatch:
    """Cancels the request's task when its client disconnects (from :data:`WATCH_AFTER_S` on),
    or when its body has not arrived whole within ``body_timeout_s`` (``body_expired``)."""

    __slots__ = (
        "_body_deadline",
        "_ex",
        "_future",
        "_proto",
        "_queue",
        "_started",
        "_task",
        "_timer",
        "_waiting",
        "body_expired",
        "reading_body",
    )

    def __init__(
        self, proto: Any, ex: Exchange, task: asyncio.Task[Any], body_timeout_s: float
    ) -> None:
        # Any: dropped (None) when the request is over, its queue entry may outlive it a little.
        self._proto: Any = proto
        self._ex: Any = ex
        self._task: Any = task
        self._future: Any = None
        self._body_deadline = body_timeout_s
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        # The body's deadline, once armed (only by a request still reading at WATCH_AFTER_S).
        self._timer: asyncio.TimerHandle | None = None
        # Until WATCH_AFTER_S has passed (or the request is over): queued on the loop's
        # _Queue, which one timer serves for every request of the loop.
        self._waiting = True
        self._queue: deque[RequestWatch] | None = _queue_of(loop).add(self, loop)
        # The caller says when it reads the body; the body's deadline applies only then.
        self.reading_body = False
        self.body_expired = False

    def _start(self) -> None:
        self._waiting = False
        if self._task.done() or self._ex.finished:
            return
        self._future = future = asyncio.ensure_future(self._proto.client_disconnect())
        future.add_done_callback(self._fired)
        if self.reading_body:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._started + self._body_deadline, self._body_late)

    def _fired(self, future: Any) -> None:
        ex, task = self._ex, self._task
        if task is None:  # the request was over before this callback ran
            return
        if not future.cancelled() and not task.done() and not ex.finished:
            ex.client_gone = True
            task.cancel("relay: client disconnected")

    def _body_late(self) -> None:
        self._timer = None
        if self.reading_body and not self._task.done():
            self.body_expired = True
            self._task.cancel("relay: request body timeout")

    def body_read(self) -> None:
        """The body arrived: its deadline no longer applies."""
        self.reading_body = False
        if self._timer is not None:  # the deadline was armed
            self._timer.cancel()
            self._timer = None

    def cancel(self) -> None:
        """The request is over: stop watching."""
        # Its queue entry is dropped now when it is the latest (one request at a time), else
        # when the queue's timer comes by: hold nothing till then.
        self._waiting = False
        self._proto = self._ex = self._task = None
        queue, self._queue = self._queue, None
        if queue and queue[-1] is self:
            queue.pop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._future is not None:
            self._future.cancel()
            self._future = None


class _Queue:
    """The watches of one loop waiting for their :data:`WATCH_AFTER_S`, in the order they
    started (so in the order they are due), under one timer for the oldest. A timer handle
    per request, made and cancelled, cost more than the rest of the watch (asyncio's timer
    heap, or uvloop's libuv timer): here a request is an append, and the timer, when it
    fires, starts the watches due and drops those of requests already over."""

    __slots__ = ("_timer", "_watches")

    def __init__(self) -> None:
        self._watches: deque[RequestWatch] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, watch: RequestWatch, loop: asyncio.AbstractEventLoop) -> deque[RequestWatch]:
        """Queue ``watch``; returns the queue (the watch leaves it at once if it is over
        before any later one came)."""
        watches = self._watches
        watches.append(watch)
        if self._timer is None:
            self._timer = loop.call_at(watch._started + WATCH_AFTER_S, self._due, loop)
        return watches

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        watches = self._watches
        now = loop.time() + _SLACK_S
        while watches:
            watch = watches[0]
            if watch._waiting:
                due = watch._started + WATCH_AFTER_S
                if due > now:
                    self._timer = loop.call_at(due, self._due, loop)
                    return
                watches.popleft()
                watch._queue = None
                watch._start()
            else:
                watches.popleft()  # the request is over


# Each loop's queue (a worker has one loop; tests make one after another). The last one used
# is kept at hand: a (loop, queue) pair, read in one step whatever other threads do.
_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()
_last: tuple[asyncio.AbstractEventLoop | None, _Queue] = (None, _Queue())


def _queue_of(loop: asyncio.AbstractEventLoop) -> _Queue:
    global _last
    last_loop, queue = _last
    if last_loop is loop:
        return queue
    found = _QUEUES.get(loop)
    if found is None:
        found = _QUEUES[loop] = _Queue()
    _last = (loop, found)
    return found
