"""OpenTelemetry spans and metrics, built in one tap after the last byte (``relay-gateway[otel]``).

Imported only when ``telemetry`` exports something (by ``app.py``, for :func:`telemetry_parts`).
Nothing here runs on the request path: the tap reads the times the exchange and its attempts
recorded (``perf_counter`` values, converted to wall-clock nanoseconds) and makes a server
span per request and a client span per upstream attempt, following OpenTelemetry's GenAI
semantic conventions. Ids are not drawn here but taken from the request's
:class:`~relay.obs.trace.TraceContext`: the attempt's span id is the one its ``traceparent``
already named upstream. Spans leave through the SDK's batch processor (a thread of its own)
and metrics through a periodic reader, so exporting never blocks the event loop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from relay import __version__
from relay.config.model import TelemetryConfig
from relay.exchange import Attempt, Endpoint, Exchange
from relay.obs.log import cache_status, endpoint_of, error_class
from relay.obs.trace import TraceContext, Tracing

log = logging.getLogger("relay.telemetry")

SCOPE = "relay"
# gen_ai.operation.name of each API (none for pass-through routes: files, audio, ...).
OPERATIONS = {
    Endpoint.CHAT: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
    Endpoint.MESSAGES: "chat",
    Endpoint.COUNT_TOKENS: "count_tokens",
    Endpoint.RESPONSES: "chat",
}
# gen_ai.system / gen_ai.provider.name of a provider kind, as the conventions spell them.
SYSTEMS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
}
# Request parameters recorded as gen_ai.request.* when the request sets them.
REQUEST_PARAMS = ("max_tokens", "temperature", "top_p", "frequency_penalty", "presence_penalty")
# Metric attribute values are bounded: a model not configured is "other".
OTHER = "other"


class _PresetIds(IdGenerator):
    """Hands the tracer the ids the request already uses (``traceparent`` went upstream with
    the attempt's span id before its span existed)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_span_id(self) -> int:
        return self.span_id

    def generate_trace_id(self) -> int:
        return self.trace_id


def span_exporter(config: TelemetryConfig) -> SpanExporter | None:
    """The exporter ``telemetry.traces_exporter`` names (None: no spans)."""
    if config.traces == "console":
        # One line per span on stdout, like every other line the gateway writes.
        return ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + os.linesep)
    if config.traces == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=config.otlp_endpoint + "/v1/traces")
    return None


def metric_reader(config: TelemetryConfig) -> MetricReader | None:
    """The periodic OTLP reader of the metrics (None: metrics are not exported)."""
    if not config.exports_metrics:
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    exporter = OTLPMetricExporter(endpoint=config.otlp_endpoint + "/v1/metrics")
    return PeriodicExportingMetricReader(
        exporter, export_interval_millis=config.metrics_interval_s * 1000
    )


class TelemetryTap:
    """Spans and metrics of every finished exchange (a tap: synchronous, after the last byte).

    ``processor`` and ``reader`` replace the configured exporters (tests pass the SDK's
    in-memory ones)."""

    def __init__(
        self,
        config: TelemetryConfig,
        tracing: Tracing,
        providers: Mapping[str, str],
        *,
        models: frozenset[str] = frozenset(),
        processor: SpanProcessor | None = None,
        reader: MetricReader | None = None,
    ) -> None:
        self.tracing = tracing
        # provider name -> gen_ai.system
        self.systems = {name: SYSTEMS.get(kind, kind) for name, kind in providers.items()}
        self.models = models
        self.resource = Resource.create(
            {"service.name": config.service_name, "service.version": __version__}
        )
        self.ids = _PresetIds()
        if processor is None:
            exporter = span_exporter(config)
            processor = BatchSpanProcessor(exporter) if exporter is not None else None
        self.tracer_provider: TracerProvider | None = None
        self.tracer: trace_api.Tracer | None = None
        if processor is not None:
            self.tracer_provider = TracerProvider(
                resource=self.resource, id_generator=self.ids, sampler=ALWAYS_ON
            )
            self.tracer_provider.add_span_processor(processor)
            self.tracer = self.tracer_provider.get_tracer(SCOPE, __version__)
        reader = reader or metric_reader(config)
        self.meter_provider: MeterProvider | None = None
        # Counts are kept here, in plain dicts (a request adds to them in about a
        # microsecond), and read by the exporter's thread at each export; only the duration
        # is a histogram, recorded through the SDK (some microseconds a measurement).
        self.requests: dict[tuple[str, str, int], int] = {}
        self.tokens: dict[tuple[str, str, str], int] = {}
        self.cost: dict[tuple[str, str], float] = {}
        if reader is not None:
            self.meter_provider = MeterProvider(resource=self.resource, metric_readers=[reader])
            meter = self.meter_provider.get_meter(SCOPE, __version__)
            meter.create_observable_counter(
                "relay.requests",
                callbacks=[self._observe_requests],
                unit="{request}",
                description="Requests answered, by model, provider and status",
            )
            meter.create_observable_counter(
                "relay.tokens",
                callbacks=[self._observe_tokens],
                unit="{token}",
                description="Tokens of the answered requests, by type (input, output)",
            )
            meter.create_observable_counter(
                "relay.cost",
                callbacks=[self._observe_cost],
                unit="USD",
                description="Cost of the answered requests, in US dollars",
            )
            self.duration = meter.create_histogram(
                "relay.request.duration", unit="s", description="Request duration, to the last byte"
            )

    # -- the tap ---------------------------------------------------------------------------
    def on_finish(self, ex: Exchange) -> None:
        if self.tracer is not None:
            context = self.tracing.context(ex)
            if context.sampled:
                self._spans(ex, context)
        if self.meter_provider is not None:
            self._metrics(ex)

    def shutdown(self) -> None:
        """Export what is pending and stop the exporters' threads (the worker is stopping)."""
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception:
                    log.exception("telemetry: could not flush on shutdown")

    # -- spans -----------------------------------------------------------------------------
    def _spans(self, ex: Exchange, context: TraceContext) -> None:
        tracer = self.tracer
        assert tracer is not None
        # perf_counter() times -> Unix nanoseconds, against one reading of both clocks.
        wall, mono = time.time_ns(), time.perf_counter()

        def ns(at: float) -> int:
            return wall - int((mono - at) * 1e9)

        end = ex.finished or mono
        if context.parent_id:
            remote = trace_api.SpanContext(
                context.trace_id,
                context.parent_id,
                is_remote=True,
                trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED),
            )
            parent = trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote), Context())
        else:
            parent = Context()
        ids = self.ids
        ids.trace_id, ids.span_id = context.trace_id, context.span_id
        route = endpoint_of(ex)
        span = tracer.start_span(
            f"{ex.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=self._request_attributes(ex, route),
            start_time=ns(ex.started),
            record_exception=False,
            set_status_on_exception=False,
        )
        failure = error_class(ex)
        if ex.status >= 500 or ex.truncated:
            span.set_status(Status(StatusCode.ERROR, ex.error_type))
        inside = trace_api.set_span_in_context(span, Context())
        operation = OPERATIONS.get(ex.endpoint)
        for attempt in ex.attempts:
            ids.span_id = context.attempt_span(attempt.number)
            model = attempt.upstream_model
            child = tracer.start_span(
                f"{operation} {model}" if operation else f"{ex.method} {route}",
                context=inside,
                kind=SpanKind.CLIENT,
                attributes=self._attempt_attributes(ex, attempt, operation),
                start_time=ns(attempt.started),
                record_exception=False,
                set_status_on_exception=False,
            )
            if attempt.error is not None:
                child.set_status(Status(StatusCode.ERROR, attempt.error))
            child.end(ns(attempt.ended or attempt.ready_at or end))
        if failure is not None:
            span.set_attribute("error.type", failure)
        span.end(ns(end))

    def _request_attributes(self, ex: Exchange, route: str) -> dict[str, Any]:
        principal = ex.principal
        attrs: dict[str, Any] = {
            "http.request.method": ex.method,
            "http.route": route,
            "http.response.status_code": ex.status,
            "relay.request_id": ex.request_id,
            "relay.tenant": principal.tenant,
            "relay.attempts": len(ex.attempts),
            "relay.stream": ex.stream,
        }
        operation = OPERATIONS.get(ex.endpoint)
        if operation is not None:
            attrs["gen_ai.operation.name"] = operation
        if ex.model:
            attrs["gen_ai.request.model"] = ex.model
        answer = ex.answer
        if answer is not None:
            attrs["gen_ai.response.model"] = answer.upstream_model
            attrs["relay.provider"] = answer.provider
            system = self.systems.get(answer.provider)
            if system is not None:
                attrs["gen_ai.system"] = attrs["gen_ai.provider.name"] = system
        usage = ex.usage
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
        optional = (
            ("relay.key_prefix", principal.key_prefix),
            ("relay.use_case", principal.use_case),
            ("relay.cost_usd", ex.cost_usd),
            ("relay.cache", cache_status(ex)),
            ("relay.error", ex.error_type),
        )
        for name, value in optional:
            if value is not None:
                attrs[name] = value
        if ex.truncated:
            attrs["relay.truncated"] = True
        return attrs

    def _attempt_attributes(
        self, ex: Exchange, attempt: Attempt, operation: str | None
    ) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.request.model": attempt.upstream_model,
            "relay.provider": attempt.provider,
            "relay.attempt": attempt.number,
        }
        if operation is not None:
            attrs["gen_ai.operation.name"] = operation
        system = self.systems.get(attempt.provider)
        if system is not None:
            attrs["gen_ai.system"] = attrs["gen_ai.provider.name"] = system
        if attempt.status:
            attrs["http.response.status_code"] = attempt.status
        if attempt is ex.answer:
            attrs["gen_ai.response.model"] = attempt.upstream_model
        usage = attempt.usage
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if attempt.error is not None:
            attrs["error.type"] = attempt.error_class or attempt.error
        request = ex.request
        if request is not None:
            for name in REQUEST_PARAMS:
                value = getattr(request, name, None)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    attrs[f"gen_ai.request.{name}"] = value
            if getattr(ex.request, "stream", None):
                attrs["gen_ai.request.stream"] = True  # not (yet) a convention; useful
        ttfb = attempt.ttfb_s
        if ttfb is not None:
            attrs["relay.time_to_first_byte_ms"] = round(ttfb * 1000, 3)
        return attrs

    # -- metrics ---------------------------------------------------------------------------
    def _metrics(self, ex: Exchange) -> None:
        model = ex.model if ex.model in self.models else OTHER
        answer = ex.answer
        provider = answer.provider if answer is not None else (OTHER if ex.attempts else "none")
        status = ex.status
        key = (model, provider, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        if ex.finished:
            self.duration.record(
                max(ex.finished - ex.started, 0.0),
                {"relay.model": model, "relay.status_class": _CLASSES.get(status // 100, "none")},
            )
        usage = ex.usage
        if usage is not None:
            tokens = self.tokens
            for kind, count in (
                ("input", usage.prompt_tokens),
                ("output", usage.completion_tokens),
            ):
                tkey = (model, provider, kind)
                tokens[tkey] = tokens.get(tkey, 0) + count
        if ex.cost_usd:
            cost = self.cost
            ckey = (model, provider)
            cost[ckey] = cost.get(ckey, 0.0) + ex.cost_usd

    # Read by the metric reader's thread: list() copies a dict in one step under the GIL.
    def _observe_requests(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                n,
                {
                    "relay.model": model,
                    "relay.provider": provider,
                    "http.response.status_code": status,
                    "relay.status_class": _CLASSES.get(status // 100, "none"),
                },
            )
            for (model, provider, status), n in list(self.requests.items())
        ]

    def _observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                n,
                {
                    "gen_ai.request.model": model,
                    "relay.provider": provider,
                    "gen_ai.token.type": kind,
                },
            )
            for (model, provider, kind), n in list(self.tokens.items())
        ]

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(usd, {"relay.model": model, "relay.provider": provider})
            for (model, provider), usd in list(self.cost.items())
        ]


_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def telemetry_parts(
    config: TelemetryConfig, providers: Mapping[str, str], models: frozenset[str]
) -> tuple[Tracing, TelemetryTap]:
    """The propagator and the tap that exports spans and metrics. ``providers`` maps a
    provider's name to its kind; ``models`` are the configured names (metrics call any other
    ``other``)."""
    tracing = Tracing(config.sample_ratio)
    return tracing, TelemetryTap(config, tracing, providers, models=models)
