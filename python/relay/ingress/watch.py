"""One timer per request watches what the request's own awaits cannot: a client that left, and
a body that stopped arriving.

Granian's disconnect signal costs about 30 us of CPU per request (a native watcher and a
cross-thread wake-up), more than all of Relay's own policy; an ``asyncio.timeout`` around the
body read cost about 10 us more (measured with py-spy at 1,500 requests/s). Requests that are
over within :data:`WATCH_AFTER_S` pay for neither: one timer handle, cancelled at the end. A
longer one (every real model call) is watched for a disconnect from then on, so a client that
leaves is noticed at most this late and its upstream dropped; if its body is still being read
then, the body's deadline (``server.body_timeout_s`` from the start) is armed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from relay.exchange import Exchange

WATCH_AFTER_S = 0.05


class RequestWatch:
    """Cancels the request's task when its client disconnects (from :data:`WATCH_AFTER_S` on),
    or when its body has not arrived whole within ``body_timeout_s`` (``body_expired``)."""

    __slots__ = (
        "_body_deadline",
        "_ex",
        "_future",
        "_proto",
        "_started",
        "_task",
        "_timer",
        "body_expired",
        "reading_body",
    )

    def __init__(
        self, proto: Any, ex: Exchange, task: asyncio.Task[Any], body_timeout_s: float
    ) -> None:
        self._proto, self._ex, self._task = proto, ex, task
        self._future: Any = None
        self._body_deadline = body_timeout_s
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._timer: asyncio.TimerHandle | None = loop.call_later(WATCH_AFTER_S, self._start)
        # The caller says when it reads the body; the body's deadline applies only then.
        self.reading_body = False
        self.body_expired = False

    def _start(self) -> None:
        self._timer = None
        if self._task.done() or self._ex.finished:
            return
        self._future = future = asyncio.ensure_future(self._proto.client_disconnect())
        future.add_done_callback(self._fired)
        if self.reading_body:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._started + self._body_deadline, self._body_late)

    def _fired(self, future: Any) -> None:
        ex, task = self._ex, self._task
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
        if self._timer is not None and self._future is not None:  # the deadline was armed
            self._timer.cancel()
            self._timer = None

    def cancel(self) -> None:
        """The request is over: stop watching."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._future is not None:
            self._future.cancel()
            self._future = None
