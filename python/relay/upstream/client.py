"""Two aiohttp classes with the same behaviour as aiohttp's own, cheaper per request.

aiohttp does per-request work for two settings the pool needs (callgrind, one request at a
time against a mock upstream, ``benches/pool_instructions.py``):

* the socket read timeout (the first-byte and idle timeouts): aiohttp cancels its loop timer
  and schedules a new one on every network read and every request (a libuv timer allocated
  and freed each time). :class:`LazyReadTimeout` keeps one timer per connection and moves a
  deadline: a read costs a clock read and an attribute store, and a timer that fires before
  the deadline re-arms itself for the rest. The timeout still fires when no byte came for
  the configured time, no later.
* ``skip_auto_headers`` (the gateway sends no ``User-Agent``): aiohttp builds two multidicts
  per request to apply it. :class:`SkipUserAgent` applies the same skip from shared constants.

Both override aiohttp internals (``ResponseHandler._reschedule_timeout``,
``ClientRequest.update_auto_headers``): :func:`session_options` checks that what they rely on is
there and otherwise leaves aiohttp's own classes in place (slower, same behaviour).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, cast

import aiohttp
from aiohttp.client_proto import ResponseHandler
from multidict import CIMultiDict, istr

USER_AGENT = istr("User-Agent")
# What the session skips, as aiohttp passes it to each request (a set of istr).
SKIPPED = frozenset((USER_AGENT,))
# The same, as aiohttp keeps it on a request (read only: shared by every request).
_SKIPPED_ON_REQUEST: CIMultiDict[None] = CIMultiDict(((USER_AGENT, None),))


class LazyReadTimeout(ResponseHandler):
    """aiohttp's response protocol, whose socket read timeout re-arms lazily.

    One loop timer per connection: a read moves the deadline; a timer that fires before it
    re-arms for the rest; a shorter deadline (the idle timeout replacing the first-byte one,
    the next request's own timeout) re-arms it sooner. When the timeout stops (the answer
    read, reading paused) the timer is left to fire for nothing rather than cancelled, so
    the next request on the kept-alive connection finds it armed; a closed connection
    cancels it."""

    # The read deadline in force (None: no read being timed), and when the armed timer fires.
    _read_deadline: float | None = None
    _armed_at = 0.0

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._read_deadline = None
            return
        loop = self._loop
        self._read_deadline = deadline = loop.time() + timeout
        handle = self._read_timeout_handle
        if handle is not None:
            if self._armed_at <= deadline:
                return  # fires first and re-arms for what is left
            handle.cancel()
        self._armed_at = deadline
        self._read_timeout_handle = loop.call_at(deadline, self._read_deadline_reached)

    def _drop_timeout(self) -> None:
        self._read_deadline = None

    def _read_deadline_reached(self) -> None:
        self._read_timeout_handle = None
        deadline = self._read_deadline
        if deadline is None:  # stopped since: nothing to time
            return
        if self._loop.time() < deadline:  # bytes came since the timer was armed
            self._armed_at = deadline
            self._read_timeout_handle = self._loop.call_at(deadline, self._read_deadline_reached)
            return
        self._on_read_timeout()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._read_deadline = None
        handle = self._read_timeout_handle
        if handle is not None:  # no timer outlives its connection
            handle.cancel()
            self._read_timeout_handle = None
        super().connection_lost(exc)


class SkipUserAgent(aiohttp.ClientRequest):
    """aiohttp's request; the session's ``skip_auto_headers`` (User-Agent) applied without
    per-request copies. Any other skip set goes through aiohttp's own method."""

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        if skip_auto_headers != SKIPPED:
            super().update_auto_headers(skip_auto_headers)
            return
        self._skip_auto_headers = _SKIPPED_ON_REQUEST
        headers = self.headers
        # aiohttp's defaults (Accept, Accept-Encoding) where the caller set none; never
        # User-Agent.
        for name, value in self.DEFAULT_HEADERS.items():
            if name not in headers:
                headers[name] = value


def _fits() -> bool:
    """Whether this aiohttp has the internals the two classes override and use."""
    handler = ResponseHandler.__dict__
    request = aiohttp.ClientRequest.__dict__
    return (
        all(
            name in handler for name in ("_reschedule_timeout", "_drop_timeout", "_on_read_timeout")
        )
        and "_skip_auto_headers" in request
        and "update_auto_headers" in request
        and isinstance(getattr(aiohttp.ClientRequest, "DEFAULT_HEADERS", None), dict)
    )


FITS = _fits()


def session_options(connector: aiohttp.BaseConnector) -> dict[str, Any]:
    """The ``ClientSession`` options that install both classes for ``connector``'s
    connections (none when this aiohttp does not fit them)."""
    if not FITS or not hasattr(connector, "_factory"):
        return {}
    # aiohttp types the attribute as a partial of its own class, which this one extends.
    connector._factory = cast(
        "functools.partial[ResponseHandler]",
        functools.partial(LazyReadTimeout, loop=connector._loop),
    )
    return {"request_class": SkipUserAgent}
