"""The API routes (one per dialect: chat, completions, embeddings, Messages, count_tokens,
Responses): the body read and decoded once, the stages, then the attempt loop to a JSON answer
or a stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from relay.egress.headers import (
    JSON,
    SSE_HEADERS,
    gateway_headers,
    passed_upstream_headers,
    usage_headers,
)
from relay.errors import GatewayError, MethodNotAllowed, ShuttingDown
from relay.exchange import Attempt, Exchange
from relay.forward import AttemptLoop
from relay.handlers.common import INTERNAL, Inflight, Pipeline, request_id
from relay.ingress.body import read_body, too_slow
from relay.ingress.watch import RequestWatch
from relay.stage import Dialect, Transport
from relay.stream.relay import ClientGone

log = logging.getLogger("relay")


class ApiRoute:
    """``POST`` on a dialect's route (see the module docstring)."""

    def __init__(self, pipeline: Pipeline, attempts: AttemptLoop, inflight: Inflight) -> None:
        self.pipeline = pipeline
        self.attempts = attempts
        self.inflight = inflight

    async def __call__(self, scope: Any, proto: Any, dialect: Dialect) -> None:
        if scope.method != "POST":
            return await self._wrong_method(scope, proto, dialect)
        pipeline, inflight = self.pipeline, self.inflight
        headers = scope.headers
        ex = Exchange(
            request_id(scope), dialect.endpoint, b"", headers, dialect=dialect, client=scope.client
        )
        task = asyncio.current_task()
        assert task is not None
        inflight.tasks.add(task)
        watch = RequestWatch(proto, ex, task, pipeline.body_timeout_s)
        streaming = False
        try:
            if inflight.draining:
                raise ShuttingDown("the gateway is shutting down; retry on another instance")
            await pipeline.admit(ex, proto)
            watch.reading_body = True
            ex.body = await read_body(proto, headers.get("content-length"), pipeline.max_body)
            watch.body_read()
            dialect.parse(ex)
            if await pipeline.answered_by_stage(ex, proto):
                return None
            if ex.stream:

                async def open_client(a: Attempt, h: Mapping[str, str]) -> Transport:
                    nonlocal streaming
                    transport = await _open_stream(ex, proto, a, h)
                    streaming = True
                    inflight.streams += 1
                    return transport

                await self.attempts.stream(ex, open_client)
            else:
                answer = await self.attempts.json(ex)
                ex.status = answer.status
                proto.response_bytes(
                    answer.status,
                    [
                        JSON,
                        *gateway_headers(ex),
                        *usage_headers(ex),
                        *passed_upstream_headers(
                            answer.upstream_headers,
                            caller_credential=answer.caller_credential,
                            own_ratelimit=ex.own_ratelimit,
                        ),
                    ],
                    answer.body,
                )
        except GatewayError as err:
            pipeline.fail(ex, proto, err)
        except asyncio.CancelledError:
            if ex.client_gone:
                ex.status = 499
            elif watch.body_expired:
                task.uncancel()
                pipeline.fail(ex, proto, too_slow(pipeline.body_timeout_s))
            elif inflight.draining:
                await _end_on_shutdown(ex, proto)
            else:
                raise
        except ClientGone:
            ex.status = 499
        except Exception:
            log.exception("unhandled error in request %s", ex.request_id)
            pipeline.fail(ex, proto, INTERNAL)
        finally:
            watch.cancel()
            inflight.tasks.discard(task)
            if streaming:
                inflight.streams -= 1
            # granian ends a streamed body when its transport is freed: drop the reference
            # (exchange -> relay -> transport) now rather than at the next GC cycle.
            ex.abort_stream = None
            await pipeline.finish(ex)
        return None

    async def _wrong_method(self, scope: Any, proto: Any, dialect: Dialect) -> None:
        """Another method than POST: a 405 in that API's envelope, recorded like every
        request."""
        ex = Exchange(request_id(scope), dialect.endpoint, b"", scope.headers, dialect=dialect)
        err = MethodNotAllowed(f"{scope.method} is not allowed on {scope.path}; use POST")
        self.pipeline.fail(ex, proto, err)
        await self.pipeline.finish(ex)


async def _open_stream(
    ex: Exchange, proto: Any, attempt: Attempt, upstream_headers: Mapping[str, str]
) -> Transport:
    """Start the client's SSE response (at the commit point)."""
    ex.status = 200
    headers = [
        *SSE_HEADERS,
        *gateway_headers(ex),
        *passed_upstream_headers(
            upstream_headers,
            caller_credential=attempt.caller_credential,
            own_ratelimit=ex.own_ratelimit,
        ),
    ]
    transport: Transport = proto.response_stream(200, headers)
    return transport


async def _end_on_shutdown(ex: Exchange, proto: Any) -> None:
    err = ShuttingDown("the gateway shut down before this response was complete")
    if ex.abort_stream is not None and await ex.abort_stream(err):
        return
    Pipeline.fail(ex, proto, err)
