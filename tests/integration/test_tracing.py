"""OpenTelemetry: a server span per request and a client span per upstream attempt, with the
GenAI conventions' attributes, and the ``traceparent`` each attempt sent upstream naming its
span. In process with the SDK's in-memory exporter and reader (the real app, the fake
provider as a real HTTP server); then through the real server process to a local OTLP
receiver that decodes what it gets with opentelemetry-proto, and to stdout."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from relay.app import RelayApp
from relay.config import parse_config
from relay.handlers import batched
from relay.obs import trace_sdk
from tests.fakes.openai_upstream import FakeUpstream
from tests.fakes.threaded import serve
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway
from tests.rsgi import Proto, Scope
from tests.services.postgres import wait_until

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


def config_for(up: FakeUpstream, **telemetry: Any) -> dict[str, Any]:
    return {
        "server": {"drain_timeout_s": 1.0},
        "providers": {
            "fake": {"kind": "openai", "base_url": up.base_url, "api_key": UPSTREAM_KEY},
            "claude": {"kind": "anthropic", "base_url": up.base_url, "api_key": UPSTREAM_KEY},
        },
        "models": {
            "gpt-4o-mini": {"provider": "fake", "pricing": {"input": 1.0, "output": 2.0}},
            "renamed": {"provider": "fake", "model": "gpt-4o-mini"},
            "falls-back": {
                "provider": "fake",
                "model": "fault-500-all-otel",
                "retries": 0,
                "fallbacks": ["renamed"],
            },
        },
        "routing": {"passthrough_provider": "fake"},
        "database": {"url": "none"},
        "telemetry": telemetry,
    }


# -- in process: the SDK's in-memory exporter -------------------------------------------------


class InProcess:
    """The real app on a loop of the test's, its spans and metrics kept in memory."""

    def __init__(self, up: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        monkeypatch.setattr(trace_sdk, "span_exporter", lambda config: self.spans)
        monkeypatch.setattr(trace_sdk, "metric_reader", lambda config: self.reader)
        config = config_for(up, traces_exporter="console", endpoint="http://127.0.0.1:9")
        self.app = RelayApp(parse_config(json.dumps(config), "test"))
        assert self.app.telemetry is not None
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.app.pool.start())

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Proto:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = {"content-type": "application/json", **headers}
        if raw:
            headers["content-length"] = str(len(raw))
        proto = Proto(raw)
        self.loop.run_until_complete(self.app.__rsgi__(Scope(path, method, headers), proto))
        return proto

    def finished(self) -> list[ReadableSpan]:
        telemetry = self.app.telemetry
        assert telemetry is not None and telemetry.tracer_provider is not None
        batched.run_all()  # the telemetry tap sees exchanges in batches
        telemetry.tracer_provider.force_flush()
        found = list(self.spans.get_finished_spans())
        self.spans.clear()
        return found

    def close(self) -> None:
        self.loop.run_until_complete(self.app.pool.close())
        assert self.app.telemetry is not None
        self.app.telemetry.shutdown()
        self.loop.close()


@pytest.fixture
def inproc(fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    fake_upstream.reset()
    app = InProcess(fake_upstream, monkeypatch)
    yield app
    app.close()


def chat_body(model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello world"}], **extra}


def split(spans: list[ReadableSpan]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, spans
    clients = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT),
        key=lambda s: (s.attributes or {})["relay.attempt"],
    )
    return servers[0], clients


def sent_traceparents(up: FakeUpstream) -> list[str]:
    return [r["headers"].get("traceparent", "") for r in up.requests()]


def test_a_request_continues_the_clients_trace(
    inproc: InProcess, fake_upstream: FakeUpstream
) -> None:
    proto = inproc.call(
        "POST",
        "/v1/chat/completions",
        chat_body(max_tokens=50, temperature=0.5),
        traceparent=TRACEPARENT,
        tracestate="vendor=abc",
    )
    assert proto.status == 200
    usage = json.loads(proto.sent[0])["usage"]
    server, clients = split(inproc.finished())
    assert len(clients) == 1
    client = clients[0]
    trace_id = int(CLIENT_TRACE, 16)
    # One trace: the client's span -> the request's span -> the attempt's span.
    assert server.context.trace_id == client.context.trace_id == trace_id
    assert server.parent is not None and server.parent.span_id == int(CLIENT_SPAN, 16)
    assert server.parent.is_remote
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    # What the provider received names the attempt's span, and the client's tracestate.
    (request,) = fake_upstream.requests()
    assert (
        request["headers"]["traceparent"] == f"00-{CLIENT_TRACE}-{client.context.span_id:016x}-01"
    )
    assert request["headers"]["tracestate"] == "vendor=abc"
    attrs = dict(server.attributes or {})
    assert server.name == "POST /v1/chat/completions"
    assert attrs["http.request.method"] == "POST"
    assert attrs["http.response.status_code"] == 200
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attrs["relay.tenant"] == "default"
    assert attrs["relay.attempts"] == 1
    assert attrs["relay.cost_usd"] == pytest.approx(
        (usage["prompt_tokens"] + 2 * usage["completion_tokens"]) / 1e6
    )
    assert "error.type" not in attrs
    cattrs = dict(client.attributes or {})
    assert client.name == "chat gpt-4o-mini"
    assert cattrs["gen_ai.operation.name"] == "chat"
    assert cattrs["gen_ai.system"] == cattrs["gen_ai.provider.name"] == "openai"
    assert cattrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert cattrs["gen_ai.request.max_tokens"] == 50
    assert cattrs["gen_ai.request.temperature"] == 0.5
    assert cattrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert cattrs["relay.provider"] == "fake"
    # Span times are the ones the exchange recorded: the attempt lies within the request.
    assert server.start_time is not None and server.end_time is not None
    assert client.start_time is not None and client.end_time is not None
    assert server.start_time <= client.start_time <= client.end_time <= server.end_time


def test_a_fallback_is_two_attempt_spans_each_named_upstream(
    inproc: InProcess, fake_upstream: FakeUpstream
) -> None:
    proto = inproc.call("POST", "/v1/chat/completions", chat_body("falls-back", stream=True))
    assert proto.status == 200
    server, clients = split(inproc.finished())
    assert server.parent is None  # no traceparent from the client: a new trace
    assert [c.parent.span_id for c in clients if c.parent] == [server.context.span_id] * 2
    failed, answered = clients
    fattrs, aattrs = dict(failed.attributes or {}), dict(answered.attributes or {})
    assert failed.status.status_code is StatusCode.ERROR
    assert fattrs["error.type"] == "server_error"
    assert fattrs["http.response.status_code"] == 500
    assert fattrs["gen_ai.request.model"] == "fault-500-all-otel"
    assert "gen_ai.response.model" not in fattrs
    assert answered.status.status_code is StatusCode.UNSET
    assert aattrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert aattrs["gen_ai.usage.output_tokens"] > 0
    assert aattrs["gen_ai.request.stream"] is True
    # Each attempt told the provider its own span, in the request's trace.
    trace = f"{server.context.trace_id:032x}"
    assert sent_traceparents(fake_upstream) == [
        f"00-{trace}-{c.context.span_id:016x}-01" for c in clients
    ]
    assert dict(server.attributes or {})["relay.attempts"] == 2


def test_pass_through_routes_send_the_trace_upstream(
    inproc: InProcess, fake_upstream: FakeUpstream
) -> None:
    proto = inproc.call(
        "POST", "/v1/images/generations", {"prompt": "a cat"}, traceparent=TRACEPARENT
    )
    assert proto.status < 500, proto.sent
    server, (client,) = split(inproc.finished())
    assert server.name == "POST /v1/images/generations"
    assert server.context.trace_id == int(CLIENT_TRACE, 16)
    (request,) = fake_upstream.requests()
    assert (
        request["headers"]["traceparent"] == f"00-{CLIENT_TRACE}-{client.context.span_id:016x}-01"
    )


def test_an_unsampled_client_trace_is_propagated_not_recorded(
    inproc: InProcess, fake_upstream: FakeUpstream
) -> None:
    unsampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
    assert (
        inproc.call("POST", "/v1/chat/completions", chat_body(), traceparent=unsampled).status
        == 200
    )
    assert inproc.finished() == []
    (sent,) = sent_traceparents(fake_upstream)
    assert sent.startswith(f"00-{CLIENT_TRACE}-") and sent.endswith("-00")
    assert sent.split("-")[2] != CLIENT_SPAN


def test_metrics_count_requests_duration_and_tokens(inproc: InProcess) -> None:
    for _ in range(3):
        assert inproc.call("POST", "/v1/chat/completions", chat_body()).status == 200
    assert inproc.call("POST", "/v1/chat/completions", chat_body("nope")).status == 404
    batched.run_all()
    data = inproc.reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    by_status = {
        p.attributes["http.response.status_code"]: p.value for p in points["relay.requests"]
    }
    assert by_status == {200: 3, 404: 1}
    assert sum(p.count for p in points["relay.request.duration"]) == 4
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points["relay.tokens"]}
    assert tokens == {"input": 3 * (2 + 3), "output": 3 * 3}  # 2 words + 3; "Echo: hello world"
    (cost,) = points["relay.cost"]
    assert cost.value == pytest.approx(3 * (5 * 1.0 + 3 * 2.0) / 1e6)
    # An unknown model name is not a label value of its own.
    models = {p.attributes["relay.model"] for p in points["relay.requests"]}
    assert models == {"gpt-4o-mini", "other"}


# -- the real server: an OTLP receiver, and stdout --------------------------------------------


class Receiver:
    """A local OTLP/HTTP receiver: decodes every export with opentelemetry-proto."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()

    def app(self) -> web.Application:
        async def traces(request: web.Request) -> web.Response:
            assert request.content_type == "application/x-protobuf"
            message = ExportTraceServiceRequest.FromString(await request.read())
            with self.lock:
                self.traces.append(message)
            return web.Response(content_type="application/x-protobuf", body=b"")

        async def metrics(request: web.Request) -> web.Response:
            message = ExportMetricsServiceRequest.FromString(await request.read())
            with self.lock:
                self.metrics.append(message)
            return web.Response(content_type="application/x-protobuf", body=b"")

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        app.router.add_post("/v1/metrics", metrics)
        return app

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of every span received."""
        with self.lock:
            return [
                ({a.key: a.value.string_value for a in rs.resource.attributes}, span)
                for message in self.traces
                for rs in message.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]

    def metric_names(self) -> set[str]:
        with self.lock:
            return {
                m.name
                for message in self.metrics
                for rm in message.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
            }


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_spans_and_metrics_reach_an_otlp_collector(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.reset()
    receiver = Receiver()
    with serve(receiver.app()) as collector:
        config = config_for(fake_upstream, metrics_interval_s=0.5)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector, "OTEL_SERVICE_NAME": "relay-under-test"}
        gateway = Gateway(config, tmp_path, env=env)
        try:
            import openai

            client = openai.OpenAI(
                base_url=gateway.base_url,
                api_key="x",
                max_retries=0,
                default_headers={"traceparent": TRACEPARENT},
            )
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            trace_id = bytes.fromhex(CLIENT_TRACE)
            assert wait_until(
                lambda: len([s for _, s in receiver.spans() if s.trace_id == trace_id]) == 2,
                timeout=20,
            ), gateway.logs()
            assert wait_until(lambda: "relay.requests" in receiver.metric_names(), timeout=20)
        finally:
            assert gateway.stop() == 0
    spans = [(r, s) for r, s in receiver.spans() if s.trace_id == trace_id]
    resource = spans[0][0]
    assert resource["service.name"] == "relay-under-test"
    server = next(s for _, s in spans if s.kind == s.SPAN_KIND_SERVER)
    client_span = next(s for _, s in spans if s.kind == s.SPAN_KIND_CLIENT)
    assert server.parent_span_id == bytes.fromhex(CLIENT_SPAN)
    assert client_span.parent_span_id == server.span_id
    assert attributes(client_span)["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes(server)["gen_ai.usage.output_tokens"] > 0
    (request,) = fake_upstream.requests()
    assert request["headers"]["traceparent"] == f"00-{CLIENT_TRACE}-{client_span.span_id.hex()}-01"
    assert {"relay.request.duration", "relay.tokens", "relay.cost"} <= receiver.metric_names()


def test_console_exporter_writes_one_json_line_per_span(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    gateway = Gateway(config_for(fake_upstream), tmp_path, env={"OTEL_TRACES_EXPORTER": "console"})
    try:
        import openai

        client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        assert gateway.stop() == 0  # the batch is flushed at exit
    entries = [json.loads(line) for line in gateway.logs().splitlines() if line.strip()]
    spans = [e for e in entries if "context" in e and "kind" in e]
    assert sorted(s["kind"] for s in spans) == ["SpanKind.CLIENT", "SpanKind.SERVER"]
    assert spans[0]["context"]["trace_id"] == spans[1]["context"]["trace_id"]


def test_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    """Without a telemetry exporter the SDK is never imported: the gateway runs without the
    ``otel`` extra, and pays nothing for it."""
    script = (
        "import sys, asyncio\n"
        "from relay.config import parse_config\n"
        "from relay.app import RelayApp\n"
        "app = RelayApp(parse_config('database: {url: none}\\n', 't'))\n"
        "assert app.telemetry is None and app.attempts.propagate is None\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
