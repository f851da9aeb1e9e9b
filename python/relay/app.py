"""The composition root: the stage list, the taps, the routes and the worker's lifecycle.

One request flows in one direction: ingress -> auth -> routing -> forward (provider ->
upstream -> stream relay) -> egress, with taps (accounting now; metrics, ledger and cache
later) run once when it finishes. Stages never import each other; they are listed here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from relay.accounting.usage import AccountingTap
from relay.auth.passthrough import PassthroughAuth
from relay.config import Config, load_config
from relay.egress.errors import error_headers
from relay.egress.headers import JSON
from relay.errors import GatewayError, MethodNotAllowed, NotFound, ShuttingDown
from relay.exchange import Endpoint, Exchange
from relay.forward import Forwarder
from relay.ingress.body import read_body
from relay.ingress.parse import parse_into
from relay.native import counter_for
from relay.obs.log import configure_logging, log_exchange
from relay.providers import build_providers
from relay.routing.router import Router
from relay.shutdown import install_granian_hook, on_shutdown
from relay.stage import Stage
from relay.stream.relay import ClientGone
from relay.upstream import UpstreamPool

log = logging.getLogger("relay")

_PROXIED = {f"/v1{e.value}": e for e in Endpoint}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_INTERNAL = GatewayError("the gateway failed while handling this request; see its logs")


class RelayApp:
    """The RSGI application of one granian worker."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pool = UpstreamPool()
        providers = build_providers(config, self.pool)
        self.router = Router(config)
        self.stages: Sequence[Stage] = (PassthroughAuth(), self.router)
        self.forward = Forwarder(providers, taps=(AccountingTap(),))
        self.max_body = config.server.max_body_bytes
        self.draining = False
        self._inflight: set[asyncio.Task[Any]] = set()
        self._drain_task: asyncio.Task[None] | None = None
        self._models_body = _models_list(config)

    # -- lifecycle (granian calls these on the worker's loop) ------------------------------
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.pool.start())
        # Token ranks take ~0.1-0.2 s to load: pay it at start, not on a client's request.
        for encoding in self.router.encodings() | {"o200k_base"}:
            counter_for(encoding)
        on_shutdown(lambda: self._start_drain(loop))

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._start_drain(loop))
        loop.run_until_complete(self.pool.close())

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        if self._drain_task is None:
            self._drain_task = loop.create_task(self.drain(self.config.server.drain_timeout_s))
        return self._drain_task

    async def drain(self, grace_s: float) -> None:
        """Stop taking requests; let in-flight ones finish within ``grace_s``, then end the rest
        (streams with an explicit error event, others with a 503)."""
        self.draining = True
        if not self._inflight:
            return
        log.info("draining %d in-flight requests (up to %.1fs)", len(self._inflight), grace_s)
        _, left = await asyncio.wait(set(self._inflight), timeout=grace_s)
        if left:
            log.warning("ending %d requests still running after the drain timeout", len(left))
            for task in left:
                task.cancel("relay: shutdown")
            await asyncio.wait(left, timeout=2.0)

    # -- requests ----------------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        path = scope.path
        endpoint = _PROXIED.get(path)
        if endpoint is not None:
            if scope.method != "POST":
                return self._error(
                    proto,
                    _new_id(scope),
                    MethodNotAllowed(f"{scope.method} is not allowed on {path}; use POST"),
                )
            return await self._proxy(scope, proto, endpoint)
        headers = [JSON, ("x-request-id", _new_id(scope))]
        if path == "/v1/models" and scope.method == "GET":
            proto.response_bytes(200, headers, self._models_body)
        elif path == "/healthz":
            proto.response_bytes(200, headers, b'{"status":"ok"}')
        elif path == "/readyz":
            ready = self.pool.ready and not self.draining
            proto.response_bytes(
                200 if ready else 503,
                headers,
                b'{"status":"ready"}' if ready else b'{"status":"not ready"}',
            )
        else:
            self._error(proto, headers[1][1], NotFound(f"no route for {scope.method} {path}"))
        return None

    async def _proxy(self, scope: Any, proto: Any, endpoint: Endpoint) -> None:
        headers = scope.headers
        ex = Exchange(_new_id(scope), endpoint, b"", headers)
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        watcher = asyncio.ensure_future(proto.client_disconnect())
        watcher.add_done_callback(lambda w: None if w.cancelled() else _client_left(ex, task))
        try:
            if self.draining:
                raise ShuttingDown("the gateway is shutting down; retry on another instance")
            ex.body = await read_body(proto, headers.get("content-length"), self.max_body)
            parse_into(ex)
            for stage in self.stages:
                reply = await stage(ex)
                if reply is not None:
                    ex.status = reply.status
                    proto.response_bytes(reply.status, list(reply.headers), reply.body)
                    return
            if ex.stream:
                await self.forward.stream(ex, proto)
            else:
                await self.forward.json(ex, proto)
        except GatewayError as err:
            self._fail(ex, proto, err)
        except asyncio.CancelledError:
            if ex.client_gone:
                ex.status = 499
            elif self.draining:
                await self._end_on_shutdown(ex, proto)
            else:
                raise
        except ClientGone:
            ex.status = 499
        except Exception:
            log.exception("unhandled error in request %s", ex.request_id)
            self._fail(ex, proto, _INTERNAL)
        finally:
            watcher.cancel()
            self._inflight.discard(task)
            self.forward.finish(ex)
            # granian ends a streamed body when its transport is freed: drop the reference
            # (exchange -> relay -> transport) now rather than at the next GC cycle.
            ex.abort_stream = None
            log_exchange(ex)

    async def _end_on_shutdown(self, ex: Exchange, proto: Any) -> None:
        err = ShuttingDown("the gateway shut down before this response was complete")
        if ex.abort_stream is not None and await ex.abort_stream(err):
            return
        self._fail(ex, proto, err)

    def _fail(self, ex: Exchange, proto: Any, err: GatewayError) -> None:
        ex.status = err.status
        ex.error_type = ex.error_type or err.code or err.type
        self._error(proto, ex.request_id, err)

    @staticmethod
    def _error(proto: Any, request_id: str, err: GatewayError) -> None:
        try:
            proto.response_bytes(err.status, error_headers(err, request_id), err.openai_body())
        except Exception:  # the client response was already started or the client left
            log.debug("could not send error for %s", request_id)


def _client_left(ex: Exchange, task: asyncio.Task[Any]) -> None:
    """The client disconnected: cancel its request so the upstream is dropped at once."""
    if not task.done() and not ex.finished:
        ex.client_gone = True
        task.cancel("relay: client disconnected")


def _new_id(scope: Any) -> str:
    given = scope.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return str(given)
    return "req_" + secrets.token_hex(12)


def _models_list(config: Config) -> bytes:
    created = int(time.time())
    return msgspec.json.encode(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": model.owned_by}
                for name, model in config.models.items()
            ],
        }
    )


def create_app(config: Config | None = None) -> RelayApp:
    """Build the app; granian calls this (as a factory) in every worker."""
    config = config or load_config()
    configure_logging(config.server.log_level)
    install_granian_hook()
    return RelayApp(config)
