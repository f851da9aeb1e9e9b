"""The composition root: the route table, the stages in order, the attempt loop, the stream
hooks and the taps, and the worker's lifecycle.

One request flows in one direction:

    ingress (route -> dialect, body) -> dialect.parse (one decode) -> stages (auth, routing)
    -> attempt loop (provider adapter -> upstream -> stream relay + stream hooks, or JSON +
       answer hooks; the answering attempt settled) -> egress (JSON or SSE)
    -> taps, once, after the last byte -> settlers, awaited, off the client's critical path

Stages, providers and the relay never import each other; they are wired here.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.accounting.usage import Accountant
from relay.config import Config, load_config
from relay.dialects import ANTHROPIC_DIALECTS, OPENAI_DIALECTS, RESPONSES_DIALECTS, Dialect
from relay.dialects.models import ModelCatalog
from relay.egress.headers import (
    JSON,
    SSE_HEADERS,
    gateway_headers,
    passed_upstream_headers,
    usage_headers,
)
from relay.errors import GatewayError, MethodNotAllowed, NotFound, ShuttingDown
from relay.exchange import Attempt, Endpoint, Exchange
from relay.forward import AttemptLoop
from relay.ids import new_id
from relay.ingress.body import discard_body, read_body, too_slow
from relay.ingress.watch import RequestWatch
from relay.ledger.stored import StoredResponses
from relay.native import counter_for
from relay.obs.log import configure_logging, log_exchange
from relay.passthrough.forward import Passthrough
from relay.providers import build_providers
from relay.providers.responses import bridge
from relay.routing.policy import RoutingPolicy
from relay.routing.router import Router
from relay.shutdown import install_granian_hook, on_shutdown
from relay.stage import AnswerHook, Gate, Reply, Settler, Stage, StreamHook, Tap, Transport
from relay.stream.relay import ClientGone, StreamRelay
from relay.tenancy import Tenancy
from relay.upstream import UpstreamPool

log = logging.getLogger("relay")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_INTERNAL = GatewayError("the gateway failed while handling this request; see its logs")
# Errors outside any dialect's route (unknown paths, /v1/models) use OpenAI's envelope.
_DEFAULT_DIALECT: Dialect = OPENAI_DIALECTS[0]


@dataclass(frozen=True, slots=True)
class Extensions:
    """Parts an embedding program adds to the pipeline (a test's stage, say): each list is
    appended to the gateway's own. ``stages`` run after authentication, before routing."""

    gates: tuple[Gate, ...] = ()
    stages: tuple[Stage, ...] = ()
    answer_hooks: tuple[AnswerHook, ...] = ()
    stream_hooks: tuple[StreamHook, ...] = ()
    taps: tuple[Tap, ...] = ()
    settlers: tuple[Settler, ...] = ()


class RelayApp:
    """The RSGI application of one granian worker."""

    def __init__(self, config: Config, extensions: Extensions | None = None) -> None:
        extensions = extensions or Extensions()
        self.config = config
        self.pool = UpstreamPool(
            config.server.upstream_connections_per_host, config.server.max_upstream_body_bytes
        )
        self.router = Router(config)
        # Every deployment's circuit breaker: states() for metrics, subscribe() for changes.
        self.breakers = self.router.breakers
        self.accountant = Accountant()
        # Tenants, keys, the ledger and /admin: the auth stage by auth.mode, the ledger tap.
        self.tenancy = Tenancy(config)
        # Checks on the headers alone, before the body is read (a gateway key: 401 first).
        self.gates: Sequence[Gate] = (*self.tenancy.gates, *extensions.gates)
        # The request path, in order. Each stage may answer (a Reply) or refuse (raise).
        stored = self.tenancy.responses
        self.stages: Sequence[Stage] = (
            self.tenancy.auth,
            *extensions.stages,
            # GET/DELETE /v1/responses/{id} of a response stored here (else on to routing).
            *((StoredResponses(stored, config.routing.passthrough_provider),) if stored else ()),
            self.router,
        )
        # Observers/transformers of JSON answers and of every stream event (restoration,
        # output guardrails, cache recording).
        self.answer_hooks: Sequence[AnswerHook] = extensions.answer_hooks
        self.hooks: Sequence[StreamHook] = extensions.stream_hooks
        # Run once per exchange after its last byte (metrics, ledger).
        self.taps: Sequence[Tap] = (*self.tenancy.taps, *extensions.taps)
        # Awaited after the taps, bounded in time (reservations, cache writes).
        self.settlers: Sequence[Settler] = extensions.settlers
        self.settle_timeout_s = config.server.settle_timeout_s
        # Every adapter also serves /v1/responses (passed through or translated to chat).
        providers = bridge(build_providers(config), self.tenancy.responses)
        self.passthrough = Passthrough(config, providers, self.pool, self.accountant.settle)
        self.attempts = AttemptLoop(
            providers,
            self.pool,
            relay=StreamRelay,
            settle=self.accountant.settle,
            hooks=self.hooks,
            policy=RoutingPolicy(self.router),
            answer_hooks=self.answer_hooks,
        )
        self.routes: dict[str, Dialect] = {
            dialect.path: dialect
            for dialect in (*OPENAI_DIALECTS, *ANTHROPIC_DIALECTS, *RESPONSES_DIALECTS)
        }
        self.max_body = config.server.max_body_bytes
        self.body_timeout = config.server.body_timeout_s
        self.draining = False
        self._inflight: set[asyncio.Task[Any]] = set()
        self._drain_task: asyncio.Task[None] | None = None
        self.models = ModelCatalog({n: m.owned_by for n, m in config.models.items()})

    # -- lifecycle (granian calls these on the worker's loop) ------------------------------
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.pool.start())
        loop.run_until_complete(self.tenancy.start())
        # Token ranks take ~0.1-0.2 s to load: pay it at start, not on a client's request.
        for encoding in self.router.encodings() | {"o200k_base"}:
            counter_for(encoding)
        on_shutdown(lambda: self._start_drain(loop))
        tune_gc()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._start_drain(loop))
        loop.run_until_complete(self.tenancy.stop())  # flushes the ledger queue
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
        dialect = self.routes.get(path)
        if dialect is not None:
            if scope.method != "POST":
                return await self._wrong_method(scope, proto, dialect)
            return await self._proxy(scope, proto, dialect)
        if path.startswith("/admin/"):
            return await self._admin(scope, proto)
        if path.startswith("/v1/") and not _is_local(path):
            return await self._passthrough(scope, proto)
        return self._local(scope, proto, path)

    async def _wrong_method(self, scope: Any, proto: Any, dialect: Dialect) -> None:
        """Another method than POST on an API route: a 405 in that API's envelope, recorded
        like every request."""
        ex = Exchange(_new_id(scope), dialect.endpoint, b"", scope.headers, dialect=dialect)
        err = MethodNotAllowed(f"{scope.method} is not allowed on {scope.path}; use POST")
        self._fail(ex, proto, err)
        await self._finish(ex)

    async def _admin(self, scope: Any, proto: Any) -> None:
        """The admin API (its own authentication, OpenAI's error envelope)."""
        request_id = _new_id(scope)
        try:
            body = await read_body(
                proto, scope.headers.get("content-length"), self.max_body, self.body_timeout
            )
        except GatewayError as err:
            return self._render(proto, request_id, _DEFAULT_DIALECT, err, [])
        status, headers, payload = await self.tenancy.admin.handle(
            scope.method, scope.path, scope.query_string, scope.headers, body
        )
        proto.response_bytes(status, [*headers, ("x-request-id", request_id)], payload)
        return None

    def _local(self, scope: Any, proto: Any, path: str) -> None:
        """Routes the gateway answers itself."""
        request_id = _new_id(scope)
        headers = [JSON, ("x-request-id", request_id)]
        method = scope.method
        if path == "/healthz":
            proto.response_bytes(200, headers, b'{"status":"ok"}')
        elif path == "/readyz":
            ready = self.pool.ready and not self.draining
            body = b'{"status":"ready"}' if ready else b'{"status":"not ready"}'
            proto.response_bytes(200 if ready else 503, headers, body)
        elif path == "/v1/models" or path.startswith("/v1/models/"):
            # Anthropic's SDKs send anthropic-version: they get Anthropic's shapes and errors.
            anthropic = "anthropic-version" in scope.headers
            dialect = ANTHROPIC_DIALECTS[0] if anthropic else _DEFAULT_DIALECT
            if anthropic:
                headers.append(("request-id", request_id))
            try:
                if method != "GET":
                    raise MethodNotAllowed(f"{method} is not allowed on {path}; use GET")
                proto.response_bytes(200, headers, self._models_answer(scope, path, anthropic))
            except GatewayError as err:
                self._render(proto, request_id, dialect, err, headers[2:])
        else:
            self._render(
                proto, request_id, _DEFAULT_DIALECT, NotFound(f"no route for {method} {path}"), []
            )

    def _models_answer(self, scope: Any, path: str, anthropic: bool) -> bytes:
        """``/v1/models`` or ``/v1/models/{id}``, in OpenAI's or Anthropic's shape."""
        models = self.models
        if path == "/v1/models":
            return models.anthropic_list(scope.query_string) if anthropic else models.openai_list
        name = path[len("/v1/models/") :]
        return models.anthropic_model(name) if anthropic else models.openai_model(name)

    async def _proxy(self, scope: Any, proto: Any, dialect: Dialect) -> None:
        headers = scope.headers
        ex = Exchange(_new_id(scope), dialect.endpoint, b"", headers, dialect=dialect)
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        watch = RequestWatch(proto, ex, task, self.body_timeout)
        try:
            if self.draining:
                raise ShuttingDown("the gateway is shutting down; retry on another instance")
            try:
                for gate in self.gates:
                    if (deciding := gate.admit(ex)) is not None:  # a look-up (new key)
                        await deciding
            except GatewayError:
                await discard_body(proto, self.max_body, self.body_timeout)
                raise
            watch.reading_body = True
            ex.body = await read_body(proto, headers.get("content-length"), self.max_body)
            watch.body_read()
            dialect.parse(ex)
            if await self._answered_by_stage(ex, proto):
                return
            if ex.stream:
                await self.attempts.stream(ex, lambda a, h: self._open_stream(ex, proto, a, h))
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
                            answer.upstream_headers, caller_credential=answer.caller_credential
                        ),
                    ],
                    answer.body,
                )
        except GatewayError as err:
            self._fail(ex, proto, err)
        except asyncio.CancelledError:
            if ex.client_gone:
                ex.status = 499
            elif watch.body_expired:
                task.uncancel()
                self._fail(ex, proto, too_slow(self.body_timeout))
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
            watch.cancel()
            self._inflight.discard(task)
            # granian ends a streamed body when its transport is freed: drop the reference
            # (exchange -> relay -> transport) now rather than at the next GC cycle.
            ex.abort_stream = None
            await self._finish(ex)

    async def _passthrough(self, scope: Any, proto: Any) -> None:
        """Any other /v1 route: a stored response, else forwarded to a configured provider."""
        ex = Exchange(_new_id(scope), Endpoint.PASSTHROUGH, b"", scope.headers)
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        watch = RequestWatch(proto, ex, task, self.body_timeout)
        try:
            if self.draining:
                raise ShuttingDown("the gateway is shutting down; retry on another instance")
            try:
                for gate in self.gates:  # a gateway key, before any upload is read
                    if (deciding := gate.admit(ex)) is not None:
                        await deciding
            except GatewayError:
                await discard_body(proto, self.max_body, self.body_timeout)
                raise
            body = await self.passthrough.open(ex, scope, proto)
            if not await self._answered_by_stage(ex, proto):
                await self.passthrough.forward(ex, scope, proto, body)
        except GatewayError as err:
            if ex.status:  # the answer had started: it ends here, cut
                ex.truncated = True
                ex.error_type = err.code or err.type
            else:
                self._fail(ex, proto, err)
        except asyncio.CancelledError:
            if not ex.client_gone and not self.draining:
                raise
            ex.status = 499 if ex.client_gone else ex.status or 503
        except OSError:  # the client went away while the answer was relayed
            ex.client_gone = True
            ex.status = 499
        except Exception:
            log.exception("unhandled error in request %s", ex.request_id)
            if not ex.status:
                self._fail(ex, proto, _INTERNAL)
        finally:
            watch.cancel()
            self._inflight.discard(task)
            await self._finish(ex)

    async def _answered_by_stage(self, ex: Exchange, proto: Any) -> bool:
        """Run the stages in order; True when one answered (its reply is sent)."""
        for stage in self.stages:
            reply = await stage(ex)
            if reply is not None:
                await self._reply(ex, proto, reply)
                return True
        return False

    async def _open_stream(
        self, ex: Exchange, proto: Any, attempt: Attempt, upstream_headers: Mapping[str, str]
    ) -> Transport:
        """Start the client's SSE response (at the commit point)."""
        ex.status = 200
        headers = [
            *SSE_HEADERS,
            *gateway_headers(ex),
            *passed_upstream_headers(upstream_headers, caller_credential=attempt.caller_credential),
        ]
        transport: Transport = proto.response_stream(200, headers)
        return transport

    async def _reply(self, ex: Exchange, proto: Any, reply: Reply) -> None:
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
        try:
            async for frames in reply.stream:
                await transport.send_bytes(frames)
        except OSError:
            ex.client_gone = True
            ex.status = 499

    async def _finish(self, ex: Exchange) -> None:
        """Run every tap exactly once, then await the settlers (the client has its answer)."""
        if ex.finished:
            return
        ex.finished = time.perf_counter()
        for tap in self.taps:
            try:
                tap.on_finish(ex)
            except Exception:
                log.exception("tap %s failed for request %s", type(tap).__name__, ex.request_id)
        log_exchange(ex)
        if self.settlers:
            await self._settle(ex)

    async def _settle(self, ex: Exchange) -> None:
        settlers = self.settlers
        results = asyncio.gather(*(s.settle(ex) for s in settlers), return_exceptions=True)
        try:
            outcomes = await asyncio.wait_for(results, self.settle_timeout_s)
        except TimeoutError:
            log.warning(
                "request %s: settling took over %.1fs and was abandoned",
                ex.request_id,
                self.settle_timeout_s,
            )
            return
        for settler, outcome in zip(settlers, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error(
                    "settler %s failed for request %s",
                    type(settler).__name__,
                    ex.request_id,
                    exc_info=outcome,
                )

    async def _end_on_shutdown(self, ex: Exchange, proto: Any) -> None:
        err = ShuttingDown("the gateway shut down before this response was complete")
        if ex.abort_stream is not None and await ex.abort_stream(err):
            return
        self._fail(ex, proto, err)

    def _fail(self, ex: Exchange, proto: Any, err: GatewayError) -> None:
        ex.status = err.status
        ex.error_type = ex.error_type or err.code or err.type
        self._error(proto, ex, err)

    def _error(self, proto: Any, ex: Exchange, err: GatewayError) -> None:
        dialect = ex.dialect or _DEFAULT_DIALECT
        self._render(proto, ex.request_id, dialect, err, gateway_headers(ex)[1:])

    @staticmethod
    def _render(
        proto: Any,
        request_id: str,
        dialect: Dialect,
        err: GatewayError,
        extra: list[tuple[str, str]],
    ) -> None:
        headers = [JSON, ("x-request-id", request_id), *extra, *err.headers]
        try:
            proto.response_bytes(err.status, headers, dialect.error_body(err))
        except Exception:  # the client response was already started or the client left
            log.debug("could not send error for %s", request_id)


# Python's cyclic collector runs a young-generation pass every 700 net allocations. Under load
# every request leaves objects that live a little while (queued ledger rows, pooled
# connections' buffers), and they reach the old generation and trigger full passes over the
# whole heap: measured with py-spy at 1,000 requests/s, 19% of a worker's CPU was the
# collector. The heap built at start (modules, tables, the SDK-sized aiohttp and msgspec
# objects) is frozen out of every pass, and the young pass waits for 50,000 net allocations
# (a few MB of cyclic garbage at most): the collector then takes under 1%.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Freeze what start-up built and space the collector's passes (see above)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _is_local(path: str) -> bool:
    """Routes under /v1 the gateway answers itself."""
    return path == "/v1/models" or path.startswith("/v1/models/")


def _new_id(scope: Any) -> str:
    given = scope.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return str(given)
    return new_id("req_")


def create_app(config: Config | None = None, extensions: Extensions | None = None) -> RelayApp:
    """Build the app; granian calls this (as a factory) in every worker.

    A worker serves the configuration the main process validated and handed over, never the
    file again: a file broken since start-up cannot stop a worker that is respawned. Only when
    granian is run directly, without ``relay serve``, is the configuration loaded here.
    """
    from relay.config.handoff import received

    config = config or received() or load_config()
    configure_logging(config.server.log_level)
    install_granian_hook()
    return RelayApp(config, extensions)
