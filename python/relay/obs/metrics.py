"""Prometheus metrics: every ``relay_*`` series, gathered by one tap after the last byte.

The tap (:meth:`Metrics.on_finish`) reads the finished exchange once: requests by model,
provider, tenant and status class, durations, the gateway's overhead (the figure of
``x-relay-overhead-ms``), time to first token, tokens and cost, each attempt's latency, outcome
and error class, cache hits. Nothing is observed in the stream's per-event loop. The buffers
of each (model, provider, tenant) are made on first use and kept (:class:`_Cell`), so a request
costs a few dict look-ups and additions to Python numbers; :mod:`relay.obs.prom_buffer` writes
them to prometheus-client every ``metrics.flush_interval_s`` and before each scrape.

What is not per request is sampled at each flush: requests in flight and open streams, the
ledger's queue, batches and dropped rows, each deployment's circuit-breaker state. The limits
work reports refusals and Redis's degraded mode through :meth:`Metrics.limit_refused` and
:meth:`Metrics.redis_degraded`.

Label values are bounded: configured model and provider names, status classes, error classes;
a model name that is not configured (sent on to ``default_provider``) and a tenant named by the
request's metadata are kept up to ``metrics.max_label_values`` distinct values per worker,
then counted as ``other``. No request id, key or other per-request string is a label.

Under ``relay serve`` every worker writes to the directory the main process made
(:mod:`relay.obs.prom_files`) and a scrape from any worker returns the sum over all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from relay import __version__
from relay.config.model import Config
from relay.exchange import Exchange
from relay.obs.prom_buffer import Buffers, CountBuf, HistBuf
from relay.obs.prom_files import reap_dead, shared_dir, use_files

log = logging.getLogger("relay")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
NONE = "none"
# Labels that are not bounded by the configuration are cut to this many characters too.
MAX_LABEL_CHARS = 100

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
TOKENS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1e6)
_STATUS_CLASSES = (OTHER, "1xx", "2xx", "3xx", "4xx", "5xx")
# What the limits stage meters, and whom a limit applies to (relay/limits/rule.py).
LIMIT_METERS = ("requests", "tokens", "spend")
LIMIT_SCOPES = ("key", "tenant", "caller", "global", "model", "deployment")
# A circuit breaker's state as a number: the worst worker's is shown (livemax).
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class LedgerStats(Protocol):
    """What the ledger writer counts (``relay.ledger.writer.LedgerWriter``)."""

    @property
    def pending(self) -> int:
        """Rows queued, not yet written."""
        ...

    written: int
    dropped: int
    batches: int


class LabelCap:
    """A label's values: ``fixed`` ones always, then up to ``limit`` others, then ``other``."""

    __slots__ = ("_extra", "fixed", "limit")

    def __init__(self, limit: int, fixed: Iterable[str] = ()) -> None:
        self.fixed = frozenset(fixed)
        self.limit = limit
        self._extra: set[str] = set()

    def __call__(self, value: str) -> str:
        """The label for ``value``."""
        if value in self.fixed or value in self._extra:
            return value
        if not value:
            return NONE
        if len(self._extra) >= self.limit:
            return OTHER
        value = value[:MAX_LABEL_CHARS]
        self._extra.add(value)
        return value


class Families:
    """The metric families (prometheus-client objects) of one worker."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        self.build_info = Gauge(
            "relay_build_info",
            "Relay's version and runtime (always 1).",
            ["version", "python"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.requests = Counter(
            "relay_requests",
            "Requests finished, by public model, provider, tenant and status class.",
            ["model", "provider", "tenant", "status_class"],
            registry=r,
        )
        self.duration = Histogram(
            "relay_request_duration_seconds",
            "From the request's arrival to its last byte.",
            ["model", "provider"],
            registry=r,
            buckets=SECONDS,
        )
        self.overhead = Histogram(
            "relay_gateway_overhead_seconds",
            "Time spent in the gateway rather than waiting on providers, until the answer "
            "started (x-relay-overhead-ms).",
            ["provider"],
            registry=r,
            buckets=OVERHEAD,
        )
        self.ttft = Histogram(
            "relay_time_to_first_token_seconds",
            "Streams: from the request's arrival to the first content sent.",
            ["model", "provider"],
            registry=r,
            buckets=SECONDS,
        )
        self.upstream = Histogram(
            "relay_upstream_latency_seconds",
            "Each attempt's call to a provider, from sending to its end.",
            ["provider"],
            registry=r,
            buckets=SECONDS,
        )
        self.request_tokens = Histogram(
            "relay_request_tokens",
            "Tokens per request (kind: prompt or completion).",
            ["kind"],
            registry=r,
            buckets=TOKENS,
        )
        self.tokens = Counter(
            "relay_tokens",
            "Tokens used, by tenant, public model and kind (prompt, completion).",
            ["tenant", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "relay_cost_usd",
            "Cost in USD at the configured prices, by tenant and public model.",
            ["tenant", "model"],
            registry=r,
        )
        self.attempts = Counter(
            "relay_attempts",
            "Calls to providers, by provider, kind (first, retry: the same deployment again, "
            "failover: another deployment of the model, fallback: another model), outcome "
            "(success, error, abandoned) and error class.",
            ["provider", "kind", "outcome", "error_class"],
            registry=r,
        )
        self.cache_hits = Counter(
            "relay_cache_hits", "Requests answered from the cache.", ["model"], registry=r
        )
        self.cache_misses = Counter(
            "relay_cache_misses",
            "Cacheable requests the cache did not hold.",
            ["model"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "relay_circuit_breaker_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open (the worst worker's).",
            ["deployment"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.breaker_changes = Counter(
            "relay_circuit_breaker_transitions",
            "Circuit breaker state changes, by deployment and the state entered.",
            ["deployment", "state"],
            registry=r,
        )
        self.inflight = Gauge(
            "relay_inflight_requests",
            "Requests being served (sampled at each flush).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.streams = Gauge(
            "relay_open_streams",
            "SSE answers being sent to clients (sampled at each flush).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ledger_queue = Gauge(
            "relay_ledger_queue_depth",
            "Ledger rows queued, not yet written (sampled at each flush).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ledger_batches = Counter("relay_ledger_batches", "Ledger batches written.", registry=r)
        self.ledger_rows = Counter("relay_ledger_rows", "Ledger rows written.", registry=r)
        self.ledger_dropped = Counter(
            "relay_ledger_dropped_rows",
            "Ledger rows dropped (queue full, refused by the database, lost at shutdown).",
            registry=r,
        )
        self.rate_limited = Counter(
            "relay_rate_limit_rejections",
            "Requests refused by a rate limit, by meter (requests, tokens) and scope.",
            ["meter", "scope"],
            registry=r,
        )
        self.budget = Counter(
            "relay_budget_rejections",
            "Requests refused by a spend budget, by scope.",
            ["scope"],
            registry=r,
        )
        self.budget_alerts = Counter(
            "relay_budget_alerts",
            "Budgets whose spend crossed their budget_alert_ratio, once a period each, by scope.",
            ["scope"],
            registry=r,
        )
        self.redis_degraded = Gauge(
            "relay_redis_degraded",
            "1 while limits cannot reach Redis and follow limits.on_redis_failure.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.redis_degradations = Counter(
            "relay_redis_degradations", "Times the limits lost Redis.", registry=r
        )
        self.policy_blocks = Counter(
            "relay_policy_blocks",
            "Requests or answers refused by a prompt policy (a guardrail, a redaction's "
            "block), by policy name.",
            ["policy"],
            registry=r,
        )


class _Cell:
    """The buffers of one (model, provider, tenant): what a request's tap touches."""

    __slots__ = ("completion", "cost", "duration", "prompt", "status", "ttft")

    def __init__(
        self,
        duration: HistBuf,
        ttft: HistBuf,
        prompt: CountBuf,
        completion: CountBuf,
        cost: CountBuf,
    ) -> None:
        self.duration = duration
        self.ttft = ttft
        self.prompt = prompt
        self.completion = completion
        self.cost = cost
        # By status class (index: status // 100, 0 for anything else), made on first use.
        self.status: list[CountBuf | None] = [None] * len(_STATUS_CLASSES)


class Metrics:
    """One worker's metrics: the tap, the hooks, the sampled gauges and the scrape."""

    def __init__(self, config: Config) -> None:
        settings = config.metrics
        self.flush_interval_s = settings.flush_interval_s
        self.path = shared_dir()
        if self.path is not None:
            use_files()
        self.registry = None if self.path is not None else CollectorRegistry()
        f = self.families = Families(self.registry)
        self.buffers = b = Buffers()
        cap = settings.max_label_values
        self.models = LabelCap(cap, config.models)
        self.tenants = LabelCap(cap)
        # Label values from the limits code: bounded there, capped here all the same.
        self._limit_labels = LabelCap(64)
        self._cells: dict[tuple[str, str, str], _Cell] = {}
        self._pairs: dict[tuple[str, str], tuple[HistBuf, HistBuf]] = {}
        self._usage: dict[tuple[str, str], tuple[CountBuf, CountBuf, CountBuf]] = {}
        self._providers: dict[str, tuple[HistBuf, HistBuf]] = {}
        self._attempts: dict[tuple[str, str, str, str], CountBuf] = {}
        self._refusals: dict[tuple[str, str], CountBuf] = {}
        self._breakers: dict[str, Any] = {}
        # (hits, misses) per model label; made on first use (configured models at start, so
        # both families show 0 before any traffic).
        self._cache: dict[str, tuple[CountBuf, CountBuf]] = {}
        for name in config.models:
            self._cache_of(self.models(name))
        self.prompt_tokens = b.histogram(f.request_tokens, TOKENS, "prompt")
        self.completion_tokens = b.histogram(f.request_tokens, TOKENS, "completion")
        for name in config.providers:
            self._provider(name)
        # Present at 0 before the first refusal (dashboards show 0 rather than no data).
        for scope in LIMIT_SCOPES:
            for meter in LIMIT_METERS:
                self._refusals[meter, scope] = self._refusal_buf(meter, scope)
        f.build_info.labels(__version__, platform.python_version()).set(1)
        f.redis_degraded.set(0)
        # Sampled at each flush (see watch()).
        self._inflight: Callable[[], tuple[int, int]] | None = None
        self._ledger: LedgerStats | None = None
        self._ledger_seen = (0, 0, 0)
        self._states: Callable[[], dict[str, str]] | None = None
        self._degraded = False
        self._task: asyncio.Task[None] | None = None

    # -- the tap ---------------------------------------------------------------------------
    def on_finish(self, ex: Exchange) -> None:
        """Observe one finished exchange (a :class:`~relay.stage.Tap`)."""
        principal = ex.principal
        model = self.models(ex.model)
        # A tenant of the database (a key's, or one metadata named) has a name an
        # administrator gave; any other name (unknown metadata, "default") is capped.
        tenant = (
            principal.tenant if principal.tenant_id is not None else self.tenants(principal.tenant)
        )
        answer = ex.answer
        deployment = answer.deployment if answer is not None else ex.deployment
        provider = deployment.provider if deployment is not None else NONE
        cell = self._cells.get((model, provider, tenant)) or self._cell(model, provider, tenant)
        status = ex.status
        index = status // 100 if 100 <= status < 600 else 0
        (cell.status[index] or self._status(cell, index, model, provider, tenant)).add()
        started = ex.started
        finished = ex.finished or started
        cell.duration.observe(finished - started)
        first_token = ex.first_token_at
        if ex.stream and first_token:
            cell.ttft.observe(first_token - started)
        usage = ex.usage
        if usage is not None:
            prompt, completion = usage.prompt_tokens, usage.completion_tokens
            self.prompt_tokens.observe(prompt)
            self.completion_tokens.observe(completion)
            cell.prompt.add(prompt)
            cell.completion.add(completion)
        if ex.cost_usd:
            cell.cost.add(ex.cost_usd)
        cache_hit = ex.cache_hit  # set by the cache stage (None: no cache asked)
        if cache_hit is not None:
            hit, miss = self._cache.get(model) or self._cache_of(model)
            (hit if cache_hit else miss).add()
        if ex.attempts:
            self._observe_attempts(ex, answer, provider, finished)
        if ex.blocked_by is not None:  # rare: counted at once
            self.families.policy_blocks.labels(ex.blocked_by).inc()

    def _observe_attempts(self, ex: Exchange, answer: Any, provider: str, finished: float) -> None:
        attempts = ex.attempts
        first = attempts[0].deployment
        previous = None
        waited = 0.0
        for attempt in attempts:
            deployment = attempt.deployment
            started = attempt.started
            ended = attempt.ended or finished
            upstream = self._providers.get(deployment.provider) or self._provider(
                deployment.provider
            )
            upstream[0].observe(ended - started)
            relayable = attempt.ready_at or attempt.ended
            if relayable:
                waited += max(relayable - started, 0.0)
            if previous is None:
                kind = "first"
            elif deployment is previous:
                kind = "retry"
            elif deployment.public_model != first.public_model:
                kind = "fallback"
            else:
                kind = "failover"
            previous = deployment
            error = attempt.error
            outcome = "error" if error else "success" if attempt is answer else "abandoned"
            error_class = attempt.error_class or ("other" if error else NONE)
            key = (deployment.provider, kind, outcome, error_class)
            (self._attempts.get(key) or self._attempt(key)).add()
        # As x-relay-overhead-ms: until the answer started (a stream's first content), less
        # the time spent waiting on providers.
        end = ex.first_token_at if ex.stream and ex.first_token_at else finished
        overhead = self._providers.get(provider) or self._provider(provider)
        overhead[1].observe(max(end - ex.started - waited, 0.0))

    def _cache_of(self, model: str) -> tuple[CountBuf, CountBuf]:
        f, b = self.families, self.buffers
        pair = self._cache[model] = (
            b.counter(f.cache_hits, model),
            b.counter(f.cache_misses, model),
        )
        return pair

    def _cell(self, model: str, provider: str, tenant: str) -> _Cell:
        f, b = self.families, self.buffers
        pair = self._pairs.get((model, provider))
        if pair is None:
            pair = self._pairs[model, provider] = (
                b.histogram(f.duration, SECONDS, model, provider),
                b.histogram(f.ttft, SECONDS, model, provider),
            )
        usage = self._usage.get((tenant, model))
        if usage is None:
            usage = self._usage[tenant, model] = (
                b.counter(f.tokens, tenant, model, "prompt"),
                b.counter(f.tokens, tenant, model, "completion"),
                b.counter(f.cost, tenant, model),
            )
        cell = self._cells[model, provider, tenant] = _Cell(*pair, *usage)
        return cell

    def _status(self, cell: _Cell, index: int, model: str, provider: str, tenant: str) -> CountBuf:
        buf = self.buffers.counter(
            self.families.requests, model, provider, tenant, _STATUS_CLASSES[index]
        )
        cell.status[index] = buf
        return buf

    def _provider(self, name: str) -> tuple[HistBuf, HistBuf]:
        f, b = self.families, self.buffers
        found = self._providers[name] = (
            b.histogram(f.upstream, SECONDS, name),
            b.histogram(f.overhead, OVERHEAD, name),
        )
        return found

    def _attempt(self, key: tuple[str, str, str, str]) -> CountBuf:
        buf = self._attempts[key] = self.buffers.counter(self.families.attempts, *key)
        return buf

    # -- hooks -----------------------------------------------------------------------------
    def breaker_changed(self, key: str, old: str, new: str) -> None:
        """A circuit breaker changed state (``Breakers.subscribe``)."""
        self.families.breaker_changes.labels(key, new).inc()
        self._breaker_gauge(key).set(BREAKER_STATES.get(new, 0))

    def limit_refused(self, meter: str, scope: str) -> None:
        """The limits stage refused a request: ``meter`` is ``requests``, ``tokens`` or
        ``spend`` (a budget), ``scope`` whom the limit applies to (``key``, ``tenant``...)."""
        cap = self._limit_labels
        key = (cap(meter), cap(scope))
        buf = self._refusals.get(key)
        if buf is None:
            buf = self._refusals[key] = self._refusal_buf(*key)
        buf.add()

    def _refusal_buf(self, meter: str, scope: str) -> CountBuf:
        f, b = self.families, self.buffers
        if meter == "spend":
            return b.counter(f.budget, scope)
        return b.counter(f.rate_limited, meter, scope)

    def budget_alert(self, scope: str) -> None:
        """A budget's spend crossed its ``budget_alert_ratio`` (``key`` or ``tenant``; once a
        period and budget on a host: rare, so counted at once)."""
        self.families.budget_alerts.labels(self._limit_labels(scope)).inc()

    def redis_degraded(self, degraded: bool) -> None:
        """The limits lost Redis (True) or reached it again (False)."""
        if degraded and not self._degraded:
            self.families.redis_degradations.inc()
        self._degraded = degraded
        self.families.redis_degraded.set(1 if degraded else 0)

    # -- sampled ---------------------------------------------------------------------------
    def watch(
        self,
        *,
        inflight: Callable[[], tuple[int, int]] | None = None,
        ledger: LedgerStats | None = None,
        breakers: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        """What each flush samples: (requests in flight, open streams), the ledger writer,
        the breakers' states by deployment."""
        self._inflight = inflight
        self._ledger = ledger
        self._states = breakers

    def flush(self) -> None:
        """Sample the gauges and write everything gathered to prometheus-client."""
        f = self.families
        if self._inflight is not None:
            requests, streams = self._inflight()
            f.inflight.set(requests)
            f.streams.set(streams)
        ledger = self._ledger
        if ledger is not None:
            f.ledger_queue.set(ledger.pending)
            now = (ledger.batches, ledger.written, ledger.dropped)
            seen, self._ledger_seen = self._ledger_seen, now
            for family, new, old in zip(
                (f.ledger_batches, f.ledger_rows, f.ledger_dropped), now, seen, strict=True
            ):
                if new > old:
                    family.inc(new - old)
        if self._states is not None:
            for key, state in self._states().items():
                self._breaker_gauge(key).set(BREAKER_STATES.get(state, 0))
        self.buffers.flush()

    def _breaker_gauge(self, key: str) -> Any:
        gauge = self._breakers.get(key)
        if gauge is None:
            gauge = self._breakers[key] = self.families.breaker_state.labels(key)
        return gauge

    # -- lifecycle and scrape --------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush every ``flush_interval_s`` on the worker's loop."""
        if self._task is None:
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                self.flush()
            except Exception:  # a metric must never stop the worker
                log.exception("metrics flush failed")

    async def stop(self) -> None:
        """Last flush; the worker's live gauges leave the sum (its counters stay)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.flush()
        if self.path is not None:
            mark_process_dead(os.getpid(), self.path)  # type: ignore[no-untyped-call]

    async def render(self) -> bytes:
        """The exposition of every worker's metrics (files are read off the event loop)."""
        self.flush()
        if self.path is not None:
            return await asyncio.to_thread(_collect_files, self.path)
        registry = self.registry
        assert registry is not None
        return await asyncio.to_thread(generate_latest, registry)


def _collect_files(path: str) -> bytes:
    reap_dead(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
