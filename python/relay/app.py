"""The composition root: the stages in order, the attempt loop, the hooks, the taps and the
settlers; the route table (each route family is handled in ``handlers/``); the worker's
lifecycle.

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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from relay.accounting.usage import Accountant
from relay.admin.config import ConfigAdmin
from relay.auth import auth_stage
from relay.auth.keys import KeyAuth
from relay.cache.admin import CacheAdmin
from relay.cache.policy import Policy
from relay.cache.record import AnswerRecorder, StreamRecorder
from relay.cache.stage import CacheStage, CacheWriter
from relay.cache.store import Cache
from relay.config import Config, load_config
from relay.config.version import ConfigVersion
from relay.dialects import ANTHROPIC_DIALECTS, OPENAI_DIALECTS, RESPONSES_DIALECTS, Dialect
from relay.dialects.models import ModelCatalog
from relay.forward import AttemptLoop
from relay.handlers import batched
from relay.handlers.api import ApiRoute
from relay.handlers.common import Inflight, Pipeline
from relay.handlers.local import AdminRoute, LocalRoutes, MetricsRoute, is_local
from relay.handlers.passthrough import PassthroughRoute
from relay.handlers.ui import UiRoute
from relay.ledger.responses import ResponsesTap
from relay.ledger.stored import StoredResponses
from relay.ledger.tap import LedgerTap
from relay.limits.ask import Asks
from relay.limits.backend import is_failover, limit_store, probe_redis
from relay.limits.budget import BudgetRule
from relay.limits.budget_watch import BudgetWatch
from relay.limits.model import AskedTokens, ModelLimits
from relay.limits.rules import limit_rules
from relay.limits.stage import LimitsSettler, LimitsStage
from relay.native import counter_for
from relay.obs.log import ACCESS_LINES, AccessLog, configure_logging
from relay.obs.metrics import Metrics
from relay.obs.trace import Tracing
from relay.passthrough.forward import Passthrough
from relay.policies.registry import build_policies
from relay.policies.stage import PoliciesStage, PolicyAnswers, PolicyStreams, PolicyTaps
from relay.providers import build_providers
from relay.providers.responses import bridge
from relay.routing.policy import RoutingPolicy
from relay.routing.quota import DeploymentQuota
from relay.routing.router import Router
from relay.shutdown import install_granian_hook, on_shutdown
from relay.stage import AnswerHook, Gate, Settler, Stage, StreamHook, Tap
from relay.storage.limits import LimitStore
from relay.stream.relay import StreamRelay
from relay.tenancy import Tenancy
from relay.upstream import UpstreamPool

if TYPE_CHECKING:  # the OpenTelemetry SDK is imported only when telemetry is on
    from relay.obs.trace_sdk import TelemetryTap

log = logging.getLogger("relay")


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
    """The RSGI application of one granian worker.

    A hot reload (:mod:`relay.live`) builds a new one on ``previous``, the app it replaces:
    what holds state or connections is taken over (the upstream pool, the database side and
    its ledger writer and key cache, the limits' store, the metrics, tracing, the in-flight
    set; breakers and latency averages by deployment name; the cache while its settings stay),
    and everything else is built afresh from ``config``.
    """

    def __init__(
        self,
        config: Config,
        extensions: Extensions | None = None,
        previous: RelayApp | None = None,
        version: ConfigVersion | None = None,
    ) -> None:
        extensions = extensions or Extensions()
        self.config = config
        self.version = version or ConfigVersion.of(config)
        self.pool: UpstreamPool = (
            previous.pool
            if previous is not None
            else UpstreamPool(
                config.server.upstream_connections_per_host,
                config.server.max_upstream_body_bytes,
                client=config.server.upstream_client,
            )
        )
        self.router: Router = Router(
            config,
            previous.router.breakers if previous is not None else None,
            slots=previous.router.slots_by_key if previous is not None else None,
        )
        # Every deployment's circuit breaker: states() for metrics, subscribe() for changes.
        self.breakers = self.router.breakers
        self.accountant = Accountant()
        # Prometheus (GET /metrics): a tap after the last byte, gauges sampled at each flush,
        # and hooks for the limits (limit_refused, redis_degraded). None when disabled.
        self.metrics = Metrics(config) if config.metrics.enabled and previous is None else None
        # Tenants, keys, the ledger, stored responses and /admin: the database-backed parts.
        self.tenancy: Tenancy = Tenancy(config) if previous is None else previous.tenancy
        tenancy = self.tenancy
        if previous is not None:
            self.metrics = previous.metrics
            tenancy.adopt(config)
            if self.metrics is not None:
                self.metrics.adopt(config)
        # Who is calling, by auth.mode (decided once, before the workers started).
        auth = auth_stage(tenancy.config.auth.mode, tenancy.cache)
        # Checks on the headers alone, before the body is read (a gateway key: 401 first).
        self.gates: Sequence[Gate] = (
            *((auth,) if isinstance(auth, KeyAuth) else ()),
            *extensions.gates,
        )
        # Limits: listed only when one may apply (a request costs nothing otherwise).
        limits: tuple[LimitsStage, ...] = ()
        watches: tuple[BudgetWatch, ...] = ()
        rules = limit_rules(config, tenancy.config.auth.mode)
        # Budgets of keys and tenants (only they carry budgets).
        budgets = BudgetRule() if tenancy.config.auth.mode in ("keys", "none") else None
        if budgets is not None:
            rules.append(budgets)
        model_limits = ModelLimits(config)
        if model_limits.active:
            rules.append(model_limits)
        quota_needed = self.router.has_quotas
        # Where limits are decided: the host's shared memory, or Redis with a fallback.
        self.limit_store: LimitStore | None = previous.limit_store if previous else None
        if self.limit_store is None and (rules or quota_needed or config.redis.enabled):
            self.limit_store = limit_store(config)
        store = self.limit_store
        asks = Asks(config)
        if rules and store is not None:
            refused = self.metrics.limit_refused if self.metrics is not None else None
            limits = (LimitsStage(rules, store, asks, refused),)
            if budgets is not None:
                counted = self.metrics.budget_alert if self.metrics is not None else None
                watches = (BudgetWatch(budgets, store, counted),)
        # Deployments' own quotas (targets[].limits), asked by the attempt policy per attempt.
        quota = (
            DeploymentQuota(store, AskedTokens(asks))
            if quota_needed and store is not None
            else None
        )
        # The response cache: listed only when some model is cached (else it costs nothing).
        policy = Policy(config)
        # Across a reload its entries stay while its settings do (one dropped: relay.live).
        kept = previous.cache if previous and previous.config.cache == config.cache else None
        self.cache: Cache | None = (kept or Cache.from_config(config)) if policy.enabled else None
        cached = self.cache is not None
        # Prompt policies (redaction, rewriting, guardrails, content logging, plugins): the
        # stage and each dispatcher listed only when some policy needs it.
        self.policies = policies = build_policies(config)
        chains = policies.chains()
        policy_stage = () if policies.empty else (PoliciesStage(policies),)
        policy_answers = (PolicyAnswers(),) if any(c.answer_hooks for c in chains) else ()
        policy_streams = (PolicyStreams(),) if any(c.stream_hooks for c in chains) else ()
        policy_taps = (PolicyTaps(),) if any(c.taps for c in chains) else ()
        # The request path, in order. Each stage may answer (a Reply) or refuse (raise).
        stored = tenancy.responses
        self.stages: Sequence[Stage] = (
            auth,
            # After auth (the tenant is known), before the limits and routing (they see the
            # rewritten request).
            *policy_stage,
            # Every limit that applies, charged at once (after auth: it needs the caller).
            *limits,
            *extensions.stages,
            # GET/DELETE /v1/responses/{id} of a response stored here (else on to routing).
            *((StoredResponses(stored, config.routing.passthrough_provider),) if stored else ()),
            self.router,
            # After routing's plan (the resolved model is in the key), before any attempt.
            *((CacheStage(policy, self.cache),) if self.cache is not None else ()),
        )
        # Observers/transformers of JSON answers and of every stream event (restoration,
        # output guardrails); the cache's recorders last, to keep what the client received.
        self.answer_hooks: Sequence[AnswerHook] = (
            *policy_answers,
            *extensions.answer_hooks,
            *((AnswerRecorder(),) if cached else ()),
        )
        self.hooks: Sequence[StreamHook] = (
            *policy_streams,
            *extensions.stream_hooks,
            *((StreamRecorder(max_entry_bytes(config)),) if cached else ()),
        )
        # OpenTelemetry (the SDK is imported only when telemetry exports something): the
        # trace context sent upstream with each attempt, and spans and metrics in a tap.
        telemetry = config.telemetry
        self.telemetry: TelemetryTap | None
        tracing: Tracing | None
        tracing, self.telemetry = None, None
        if previous is not None:  # telemetry's settings need a restart
            tracing, self.telemetry = previous.tracing, previous.telemetry
        elif telemetry.enabled:
            from relay.obs.trace_sdk import telemetry_parts  # the SDK: only now

            tracing, self.telemetry = telemetry_parts(
                telemetry,
                {name: p.kind for name, p in config.providers.items()},
                frozenset(config.models),
            )
        self.tracing: Tracing | None = tracing
        # Run once per exchange after its last byte, at once: what a later request may need
        # (the stored response) or an embedding program's taps expect then.
        self.taps: Sequence[Tap] = (
            # Before the ledger: content logging leaves the texts on the exchange for it.
            *policy_taps,
            *((ResponsesTap(stored),) if stored is not None else ()),
            *extensions.taps,
        )
        # Taps that only record, run a few exchanges at a time, shortly after (at once before
        # /metrics answers and when the worker stops): the ledger row, the access line, the
        # metrics, spans and OTLP metrics. See relay/handlers/batched.py for why.
        self.batched_taps: Sequence[Tap] = (
            *((LedgerTap(tenancy.writer),) if tenancy.ledger else ()),
            *((AccessLog(config.server.log_format),) if config.server.access_log else ()),
            *((self.metrics,) if self.metrics is not None else ()),
            *((self.telemetry,) if self.telemetry is not None else ()),
        )
        # Awaited after the taps, bounded in time (reservations, cache writes).
        self.settlers: Sequence[Settler] = (
            *(LimitsSettler(stage.store) for stage in limits),
            *((quota,) if quota is not None else ()),
            # After the settlement: budget alerts, and the cells of past periods emptied.
            *watches,
            *extensions.settlers,
            *(
                (CacheWriter(self.cache, tool_calls=config.cache.cache_tool_calls),)
                if self.cache is not None
                else ()
            ),
        )
        server = config.server
        self.inflight: Inflight = previous.inflight if previous is not None else Inflight()
        pipeline = Pipeline(
            self.gates,
            self.stages,
            self.taps,
            self.settlers,
            settle_timeout_s=server.settle_timeout_s,
            max_body=server.max_body_bytes,
            body_timeout_s=server.body_timeout_s,
            inflight=self.inflight,
            batched_taps=self.batched_taps,
        )
        # Every adapter also serves /v1/responses (passed through or translated to chat).
        providers = bridge(build_providers(config), tenancy.responses)
        self.passthrough = Passthrough(
            config, providers, self.pool, self.accountant.settle, propagate=tracing
        )
        self.attempts = AttemptLoop(
            providers,
            self.pool,
            relay=StreamRelay,
            settle=self.accountant.settle,
            hooks=self.hooks,
            policy=RoutingPolicy(self.router, quota=quota),
            answer_hooks=self.answer_hooks,
            propagate=tracing,
        )
        # The route table: each dialect's path, /admin, the local routes, pass-through.
        self.routes: dict[str, Dialect] = {
            dialect.path: dialect
            for dialect in (*OPENAI_DIALECTS, *ANTHROPIC_DIALECTS, *RESPONSES_DIALECTS)
        }
        if self.metrics is not None and previous is None:
            self.metrics.watch(
                inflight=self.inflight.counts,
                ledger=tenancy.writer if tenancy.ledger else None,
                breakers=self.breakers.states,
            )
            self.breakers.subscribe(self.metrics.breaker_changed)
            if is_failover(self.limit_store):
                self.limit_store.on_change = self.metrics.redis_degraded
        self._drain_task: asyncio.Task[None] | None = None
        self.api = ApiRoute(pipeline, self.attempts, self.inflight)
        self.passthrough_route = PassthroughRoute(pipeline, self.passthrough, self.inflight)
        admin: Any = tenancy.admin
        if self.cache is not None:  # DELETE /admin/cache in front of the admin API
            admin = CacheAdmin(admin, self.cache, tenancy.config.auth.admin_key)
        admin = ConfigAdmin(admin, config, self.version, tenancy.config.auth.admin_key)
        self.admin = AdminRoute(admin, server.max_body_bytes, server.body_timeout_s)
        self.local = LocalRoutes(
            ModelCatalog({n: m.owned_by for n, m in config.models.items()}),
            ready=lambda: self.pool.ready and not self.inflight.draining,
            redis=partial(probe_redis, store) if is_failover(store) else None,
        )
        self.metrics_route = MetricsRoute(self._render_metrics if self.metrics else None)
        # The dashboard at /ui, over the admin API (only with a database).
        self.ui = UiRoute(dashboard(config, tenancy.admin), server.body_timeout_s)

    # -- lifecycle (granian calls these on the worker's loop) ------------------------------
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.pool.start())
        loop.run_until_complete(self.tenancy.start())
        if self.cache is not None:
            loop.run_until_complete(self.cache.start())
        # Token ranks take ~0.1-0.2 s to load: pay it at start, not on a client's request.
        for encoding in self.router.encodings() | {"o200k_base"}:
            counter_for(encoding)
        on_shutdown(lambda: self._start_drain(loop))
        if self.metrics is not None:
            self.metrics.start(loop)
        tune_gc()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._start_drain(loop))
        # The last requests' ledger rows, access lines and metrics (an app a reload replaced
        # included).
        batched.run_all()
        loop.run_until_complete(self.tenancy.stop())  # flushes the ledger queue
        if self.cache is not None:
            loop.run_until_complete(self.cache.close())
        if self.metrics is not None:
            loop.run_until_complete(self.metrics.stop())
        loop.run_until_complete(self.pool.close())
        if is_failover(self.limit_store):
            loop.run_until_complete(self.limit_store.close())
        ACCESS_LINES.close()  # the last requests' access lines
        if self.telemetry is not None:
            self.telemetry.shutdown()  # exports what is pending

    async def _render_metrics(self) -> bytes:
        """``GET /metrics``: every request this worker finished counted first (an app a
        reload replaced included)."""
        batched.run_all()
        assert self.metrics is not None
        return await self.metrics.render()

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        if self._drain_task is None:
            grace = self.config.server.drain_timeout_s
            self._drain_task = loop.create_task(self.inflight.drain(grace))
        return self._drain_task

    @property
    def draining(self) -> bool:
        """The worker is shutting down: it takes no new requests."""
        return self.inflight.draining

    # -- requests ----------------------------------------------------------------------------
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        path = scope.path
        dialect = self.routes.get(path)
        if dialect is not None:
            return await self.api(scope, proto, dialect)
        if path.startswith("/admin/"):
            return await self.admin(scope, proto)
        if path.startswith("/v1/") and not is_local(path):
            return await self.passthrough_route(scope, proto)
        if path == "/metrics":
            return await self.metrics_route(scope, proto)
        if path == "/ui" or path.startswith("/ui/"):
            return await self.ui(scope, proto)
        answer = self.local(scope, proto, path)
        if answer is not None:
            await answer
        return None


# Python's cyclic collector runs a young-generation pass every 700 net allocations. Under load
# every request leaves objects that live a little while (queued ledger rows, pooled
# connections' buffers), and they reach the old generation and trigger full passes over the
# whole heap: measured with py-spy at 1,000 requests/s, 19% of a worker's CPU was the
# collector. The heap built at start (modules, tables, the SDK-sized aiohttp and msgspec
# objects) is frozen out of every pass, and the young pass waits for 50,000 net allocations
# (a few MB of cyclic garbage at most): the collector then takes under 1%.
GC_YOUNG_THRESHOLD = 50_000


# The largest answer the cache records: a larger one is relayed and not kept.
MAX_ENTRY_BYTES = 16 * 1024 * 1024


def max_entry_bytes(config: Config) -> int:
    """What one entry may hold: a quarter of the memory backend's room, at most 16 MiB."""
    return min(config.cache.max_bytes // 4, MAX_ENTRY_BYTES)


def tune_gc() -> None:
    """Freeze what start-up built and space the collector's passes (see above)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def dashboard(config: Config, admin: object) -> Any:
    """The dashboard of ``ui.enabled`` over the admin API (None without a database)."""
    from relay.admin.api import AdminApi

    if not config.ui.enabled or not isinstance(admin, AdminApi):
        return None
    from relay.ui.dashboard import Dashboard  # Jinja2 loads only when the dashboard is on

    return Dashboard(admin, config.ui, config.auth.admin_key)


def create_app(config: Config | None = None, extensions: Extensions | None = None) -> RelayApp:
    """Build the app; granian calls this (as a factory) in every worker.

    A worker serves the configuration the main process validated and handed over, never the
    file again: a file broken since start-up cannot stop a worker that is respawned. Only when
    granian is run directly, without ``relay serve``, is the configuration loaded here.
    """
    from relay.config.handoff import received

    config = config or received() or load_config()
    configure_logging(config.server.log_level, config.server.log_format)
    install_granian_hook()
    return RelayApp(config, extensions)
