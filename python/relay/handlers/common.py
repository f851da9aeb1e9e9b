"""What every route family shares: request ids, the in-flight set and the drain, and the
pipeline's ends (gates, the stage list, replies, errors, taps and settlers)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import types
from collections.abc import Coroutine, Generator, Sequence
from typing import Any

from relay.dialects import OPENAI_DIALECTS
from relay.egress.headers import JSON, SSE_HEADERS, gateway_headers
from relay.errors import GatewayError
from relay.exchange import Exchange
from relay.handlers.batched import BatchedTaps, tap_failed
from relay.ids import new_id
from relay.ingress.body import discard_body
from relay.stage import Dialect, Gate, Reply, Settler, Stage, Tap

log = logging.getLogger("relay")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
INTERNAL = GatewayError("the gateway failed while handling this request; see its logs")
# Errors outside any dialect's route (unknown paths, /v1/models, /admin) use OpenAI's envelope.
DEFAULT_DIALECT: Dialect = OPENAI_DIALECTS[0]


def request_id(scope: Any) -> str:
    """The client's ``x-request-id`` when it is a sane one, else a new id."""
    given = scope.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return str(given)
    return new_id("req_")


def render(
    proto: Any, rid: str, dialect: Dialect, err: GatewayError, extra: list[tuple[str, str]]
) -> None:
    """Answer ``err`` in ``dialect``'s envelope (nothing when the answer had started)."""
    headers = [JSON, ("x-request-id", rid), *extra, *err.headers]
    try:
        proto.response_bytes(err.status, headers, dialect.error_body(err))
    except Exception:  # the client response was already started or the client left
        log.debug("could not send error for %s", rid)


class Inflight:
    """The requests a worker is serving, and its drain on shutdown."""

    def __init__(self) -> None:
        self.draining = False
        self.tasks: set[asyncio.Task[Any]] = set()
        # Streamed answers started and not yet ended (metrics sample it).
        self.streams = 0

    def counts(self) -> tuple[int, int]:
        """(requests in flight, open streams)."""
        return len(self.tasks), self.streams

    async def drain(self, grace_s: float) -> None:
        """Stop taking requests; let in-flight ones finish within ``grace_s``, then end the
        rest (their handlers answer: streams with an error event, others with a 503)."""
        self.draining = True
        if not self.tasks:
            return
        log.info("draining %d in-flight requests (up to %.1fs)", len(self.tasks), grace_s)
        _, left = await asyncio.wait(set(self.tasks), timeout=grace_s)
        if left:
            log.warning("ending %d requests still running after the drain timeout", len(left))
            for task in left:
                task.cancel("relay: shutdown")
            await asyncio.wait(left, timeout=2.0)


class Pipeline:
    """The parts ``app.py`` listed, as every route runs them: gates, stages in order, the
    answer of a stage, errors, and after the last byte the taps (``taps`` at once,
    ``batched_taps`` a few exchanges at a time) and the settlers."""

    def __init__(
        self,
        gates: Sequence[Gate],
        stages: Sequence[Stage],
        taps: Sequence[Tap],
        settlers: Sequence[Settler],
        *,
        settle_timeout_s: float,
        max_body: int,
        body_timeout_s: float,
        inflight: Inflight | None = None,
        batched_taps: Sequence[Tap] = (),
    ) -> None:
        self.gates = tuple(gates)
        # Counts the streams a stage answers with (a cached stream), as the routes count theirs.
        self.inflight = inflight or Inflight()
        self.stages = tuple(stages)
        self.taps = tuple(taps)
        # Taps that only record, run a few exchanges at a time (see relay.handlers.batched).
        self.batched = BatchedTaps(batched_taps) if batched_taps else None
        self.settlers = tuple(settlers)
        self.settle_timeout_s = settle_timeout_s
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s

    async def admit(self, ex: Exchange, proto: Any) -> None:
        """The gates, on the headers alone; a refused request's body is read and dropped
        (within its limits) so that a client still uploading sees the answer."""
        try:
            for gate in self.gates:
                if (deciding := gate.admit(ex)) is not None:  # a look-up (a new key)
                    await deciding
        except GatewayError:
            await discard_body(proto, self.max_body, self.body_timeout_s)
            raise

    async def answered_by_stage(self, ex: Exchange, proto: Any) -> bool:
        """Run the stages in order; True when one answered (its reply is sent)."""
        for stage in self.stages:
            reply = await stage(ex)
            if reply is not None:
                await self.reply(ex, proto, reply)
                return True
        return False

    async def reply(self, ex: Exchange, proto: Any, reply: Reply) -> None:
        """A stage answered: JSON, or a stream of frames already in the client's dialect."""
        ex.status = reply.status
        if reply.stream is None:
            proto.response_bytes(
                reply.status, [JSON, *gateway_headers(ex), *reply.headers], reply.body
            )
            return
        transport = proto.response_stream(
            reply.status, [*SSE_HEADERS, *gateway_headers(ex), *reply.headers]
        )
        inflight = self.inflight
        inflight.streams += 1
        try:
            async for frames in reply.stream:
                await transport.send_bytes(frames)
        except OSError:
            ex.client_gone = True
            ex.status = 499
        finally:
            inflight.streams -= 1

    @staticmethod
    def fail(ex: Exchange, proto: Any, err: GatewayError) -> None:
        """Answer ``err`` in the exchange's dialect and record it."""
        ex.status = err.status
        ex.error_type = ex.error_type or err.code or err.type
        render(proto, ex.request_id, ex.dialect or DEFAULT_DIALECT, err, gateway_headers(ex)[1:])

    async def finish(self, ex: Exchange) -> None:
        """Run every tap exactly once (the batched ones with the exchange's batch), then await
        the settlers (the client has its answer)."""
        if ex.finished:
            return
        ex.finished = time.perf_counter()
        for tap in self.taps:
            try:
                tap.on_finish(ex)
            except Exception:
                tap_failed(tap, ex)
        if self.batched is not None:
            self.batched.add(ex)
        if self.settlers:
            await self._settle(ex)

    async def _settle(self, ex: Exchange) -> None:
        # One after the other rather than gathered: gather and wait_for make a task per
        # settler and one for the timeout (some 25 us a request, more than all the stages
        # together). A settler that has nothing to wait for (nothing reserved, a decision in
        # shared memory) finishes in its first step and needs no timer either; from the first
        # one that waits (Redis, a cache write) on, the rest run under one deadline.
        settlers = self.settlers
        for i, settler in enumerate(settlers):
            coro = settler.settle(ex)
            try:
                waiting = coro.send(None)
            except StopIteration:
                continue
            except Exception:
                _settler_failed(settler, ex)
                continue
            try:
                async with asyncio.timeout(self.settle_timeout_s):
                    await _settle_rest(ex, settler, coro, waiting, settlers[i + 1 :])
            except TimeoutError:
                log.warning(
                    "request %s: settling took over %.1fs and was abandoned",
                    ex.request_id,
                    self.settle_timeout_s,
                )
            return


async def _settle_rest(
    ex: Exchange,
    settler: Settler,
    coro: Coroutine[Any, Any, None],
    waiting: Any,
    rest: Sequence[Settler],
) -> None:
    """Finish ``settler`` (started: it awaits ``waiting``), then the settlers after it."""
    try:
        await _rest_of(coro, waiting)
    except Exception:
        _settler_failed(settler, ex)
    for after in rest:
        try:
            await after.settle(ex)
        except Exception:
            _settler_failed(after, ex)


def _settler_failed(settler: Settler, ex: Exchange) -> None:
    log.exception("settler %s failed for request %s", type(settler).__name__, ex.request_id)


@types.coroutine
def _rest_of(coro: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Drive a coroutine already started (it yielded ``waiting``, a future it awaits) to its
    end from inside the awaiting task, as ``await`` would have: what it yields goes to the
    task, what the task sends or throws in (a cancellation) goes to it."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in (a cancellation): handed on to the coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration:
                return
