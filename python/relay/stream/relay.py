"""Relay a provider's stream to the client, one network read at a time; hooks see it event by
event.

Before the first content reaches the client nothing is committed: a failure is an ordinary error
that the attempt loop may retry or answer as JSON. After it, every failure (the provider's,
a hook's, the gateway's own) ends the stream with the dialect's explicit error event and no
terminator, never a silent clean end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from relay.errors import GatewayError, StreamFailed, StreamProtocolError, UpstreamUnreachable
from relay.exchange import Attempt, Exchange, Usage
from relay.stage import StreamHook, StreamMapper, StreamStep, Transport, UpstreamResponse
from relay.stream.tally import TextTally

log = logging.getLogger("relay")

# Frames held before the first content beyond this many bytes commit the stream anyway: a
# provider that sends only pings or empty chunks must not make the gateway hold them without end.
HELD_LIMIT = 1 << 20


class ClientGone(Exception):
    """The client closed its connection; the upstream must be dropped."""


class StreamRelay:
    """One attempt's stream. ``transport`` is set once the client response has started."""

    def __init__(
        self,
        ex: Exchange,
        attempt: Attempt,
        upstream: UpstreamResponse,
        mapper: StreamMapper,
        stream_error: Callable[[bytes], GatewayError],
        open_client: Callable[[], Awaitable[Transport]],
        settle: Callable[[Exchange], Awaitable[None]],
        hooks: Sequence[StreamHook] = (),
    ) -> None:
        self.ex = ex
        self.attempt = attempt
        self.upstream = upstream
        self.mapper = mapper
        self.stream_error = stream_error
        self.open_client = open_client
        self.settle = settle
        self.hooks = hooks
        self.transport: Transport | None = None
        # The error that ended the stream after the commit point (with the error event).
        self.failure: GatewayError | None = None
        # Frames held back until the first content (the commit point), and their size.
        self._held: list[bytes] = []
        self._held_bytes = 0
        # The generated text, counted as it arrives (the attempt's ``text`` and ``text_tokens``).
        self._tally = TextTally(attempt)

    @property
    def committed(self) -> bool:
        """The client response has started: failures now end it with an error event."""
        return self.transport is not None

    async def run(self) -> None:
        """Relay to the end. Raises a :class:`GatewayError` only while nothing is committed."""
        try:
            await self._relay()
            await self._complete()
        except (ClientGone, GatewayError) as err:
            if isinstance(err, ClientGone) or not self.committed:
                self.upstream.close()
                raise
            await self.end_with_error(err)
        except Exception:
            log.exception("stream of request %s failed in the gateway", self.ex.request_id)
            failed = StreamFailed("the gateway failed while relaying this stream; see its logs")
            if not self.committed:
                self.upstream.close()
                raise failed from None
            await self.end_with_error(failed)

    async def _relay(self) -> None:
        attempt, mapper, tally = self.attempt, self.mapper, self._tally
        chunks = self.upstream.chunks()
        try:
            async for chunk in chunks:
                if not attempt.first_byte_at:
                    attempt.first_byte_at = time.perf_counter()
                try:
                    step = mapper.feed(chunk)
                except StreamProtocolError as err:
                    # What the read carried before the bad event still goes out first.
                    if isinstance(err.partial, StreamStep):
                        await self._take(err.partial)
                    raise
                transport = self.transport
                if transport is None or self.hooks:
                    await self._take(step)
                else:
                    # Committed and no hooks (nearly every event of a stream): _take's and
                    # _send's work inline, without two coroutines per read.
                    if step.usage is not None:
                        attempt.usage = Usage(*step.usage)
                    if step.text and tally.add(step.text):
                        await tally.count_block()
                    out = step.out
                    if out:
                        try:
                            await transport.send_bytes(out)
                        except Exception as exc:
                            self.ex.client_gone = True
                            raise ClientGone() from exc
                if step.error is not None:
                    raise self.stream_error(step.error)
                if step.done:
                    return
        finally:
            # Close the reader now: left to the loop's finaliser, each stream would cost a task.
            await chunks.aclose()
        raise UpstreamUnreachable(
            f"provider '{attempt.provider}' ended the stream before it was complete"
        )

    async def _take(self, step: StreamStep) -> None:
        """Relay one read's frames: held until the commit point, then sent as they come."""
        if step.usage is not None:
            self.attempt.usage = Usage(*step.usage)
        if step.text and self._tally.add(step.text):
            await self._tally.count_block()
        out = step.out
        if self.hooks and out:
            out = self._hooked(out)
        if self.transport is not None:
            if out:
                await self._send(out)
        elif step.content or self._held_bytes + len(out) > HELD_LIMIT:
            await self._commit(out)
        elif out:
            self._held.append(out)
            self._held_bytes += len(out)

    def _hooked(self, out: bytes) -> bytes:
        """Pass each event of ``out`` through the hooks, in order. The frames the mappers
        write always end with a blank line, so splitting there yields whole events."""
        ex, hooks = self.ex, self.hooks
        events = out.split(b"\n\n")
        tail = events.pop()  # b"" after the last whole frame
        sent = []
        for event in events:
            frame = event + b"\n\n"
            for hook in hooks:
                frame = hook.on_event(ex, frame)
                if not frame:
                    break
            if frame:
                sent.append(frame)
        if tail:  # not a whole frame (never written by a mapper): passed on untouched
            sent.append(tail)
        return b"".join(sent)

    def _flush_hooks(self) -> bytes:
        """What the hooks still hold at the end; each one's release passes the later ones."""
        ex, out = self.ex, b""
        for hook in self.hooks:
            if out:
                out = hook.on_event(ex, out)
            out += hook.on_end(ex)
        return out

    async def _complete(self) -> None:
        """The provider finished: the hooks' held frames, usage and cost, the end frames."""
        ex = self.ex
        self.attempt.ended = time.perf_counter()
        # The end event was read: the connection is kept if the body's end follows at once.
        self.upstream.release()
        if self.hooks:
            held = self._flush_hooks()
            if held:
                await (self._send(held) if self.transport is not None else self._commit(held))
        await self._tally.drain()  # the last block's count, rather than counting it again
        await self.settle(ex)
        usage_chunk = None
        if ex.client_wants_usage and self.attempt.usage is None and ex.usage is not None:
            usage_chunk = ex.usage
        assert ex.dialect is not None
        tail = ex.dialect.end_frames(ex, usage_chunk)
        if self.transport is None:
            await self._commit(tail)
        else:
            await self._send(tail)

    async def _commit(self, out: bytes) -> None:
        now = time.perf_counter()
        self.attempt.ready_at = now
        self.ex.first_token_at = now
        self.ex.answer = self.attempt  # from here on, this attempt's answer is the client's
        try:
            self.transport = await self.open_client()
        except Exception as exc:
            raise ClientGone() from exc
        held, self._held = self._held, []
        await self._send(b"".join(held) + out if held else out)

    async def _send(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        try:
            await transport.send_bytes(data)
        except Exception as exc:
            self.ex.client_gone = True
            raise ClientGone() from exc

    async def abort(self, err: Exception) -> bool:
        """End the stream with ``err`` if the client response has started; else return False."""
        self.upstream.close()
        if self.transport is None:
            return False
        await self.end_with_error(
            err if isinstance(err, GatewayError) else StreamFailed("the stream was aborted")
        )
        return True

    async def end_with_error(self, err: GatewayError) -> None:
        """End a committed stream with the dialect's error event (no terminator)."""
        ex = self.ex
        # Kept without its traceback: its frames hold this relay, and a cycle would keep the
        # client's response open (granian ends it when the transport is freed).
        err.__context__ = err.__cause__ = None
        self.failure = err.with_traceback(None)
        self.upstream.close()
        self.attempt.ended = self.attempt.ended or time.perf_counter()
        self.attempt.error = self.attempt.error or err.code or err.type
        ex.truncated = True
        ex.error_type = err.code or err.type
        assert ex.dialect is not None
        frames = ex.dialect.error_frame(err, ex)
        if self.hooks:
            try:  # what a hook holds (a partial placeholder) still reaches the client first
                frames = self._flush_hooks() + frames
            except Exception:
                log.exception("stream hook failed at the end of request %s", ex.request_id)
        await self._send(frames)
