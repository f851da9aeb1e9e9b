"""The metrics tap and hooks: what one finished exchange adds, with bounded labels."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from relay.config import parse_config
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal, Usage
from relay.obs.metrics import Metrics

CONFIG = """
providers:
  a: {kind: openai, base_url: "http://a/v1"}
  b: {kind: openai, base_url: "http://b/v1"}
models:
  chat: {provider: a}
  backup: {provider: b}
metrics: {max_label_values: 2}
"""

A = Deployment("a", "chat-up", "chat")
A2 = Deployment("a", "chat-other", "chat")
B = Deployment("b", "backup-up", "backup")


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # values in this process
    return Metrics(parse_config(CONFIG, "t", {}))


def value(metrics: Metrics, name: str, **labels: str) -> float:
    metrics.flush()
    assert metrics.registry is not None
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def finished(
    model: str = "chat",
    *attempts: Attempt,
    status: int = 200,
    stream: bool = False,
    tenant: str = "default",
    tenant_id: str | None = None,
    usage: Usage | None = None,
    cost: float | None = None,
) -> Exchange:
    """An exchange as the pipeline hands it to the taps: started at 100 s, over at 101.5 s."""
    ex = Exchange("req_1", Endpoint.CHAT, b"", {}, model=model, stream=stream)
    ex.principal = Principal(tenant=tenant, tenant_id=tenant_id)
    ex.started, ex.finished, ex.status = 100.0, 101.5, status
    ex.attempts = list(attempts)
    answered = [a for a in attempts if a.error is None]
    if answered:
        ex.answer = answered[-1]
        ex.deployment = answered[-1].deployment
    elif attempts:
        ex.deployment = attempts[-1].deployment
    ex.usage, ex.cost_usd = usage, cost
    return ex


def ok(deployment: Deployment, started: float = 100.1, ended: float = 101.0) -> Attempt:
    return Attempt(deployment, started=started, ready_at=ended, ended=ended, status=200)


def failed(deployment: Deployment, error_class: str | None = "server_error") -> Attempt:
    attempt = Attempt(deployment, started=100.0, ended=100.05, status=503)
    attempt.error, attempt.error_class = "upstream_error", error_class
    return attempt


def test_a_json_request_counts_once_with_its_tokens_cost_and_times(metrics: Metrics) -> None:
    ex = finished("chat", ok(A), usage=Usage(12, 30), cost=0.002)
    metrics.on_finish(ex)
    labels = {"model": "chat", "provider": "a", "tenant": "default"}
    assert value(metrics, "relay_requests_total", **labels, status_class="2xx") == 1
    assert value(metrics, "relay_request_duration_seconds_sum", model="chat", provider="a") == (
        pytest.approx(1.5)
    )
    assert value(metrics, "relay_tokens_total", tenant="default", model="chat", kind="prompt") == 12
    assert (
        value(metrics, "relay_tokens_total", tenant="default", model="chat", kind="completion")
        == 30
    )
    assert value(metrics, "relay_cost_usd_total", tenant="default", model="chat") == 0.002
    assert value(metrics, "relay_request_tokens_sum", kind="prompt") == 12
    assert value(metrics, "relay_request_tokens_sum", kind="completion") == 30
    assert value(metrics, "relay_upstream_latency_seconds_sum", provider="a") == pytest.approx(0.9)
    # Overhead: 1.5 s in all, 0.9 s waiting on the provider (x-relay-overhead-ms's figure).
    assert value(metrics, "relay_gateway_overhead_seconds_sum", provider="a") == pytest.approx(0.6)
    assert (
        value(metrics, "relay_time_to_first_token_seconds_count", model="chat", provider="a") == 0
    )
    attempt = {"provider": "a", "kind": "first", "outcome": "success", "error_class": "none"}
    assert value(metrics, "relay_attempts_total", **attempt) == 1


def test_a_stream_observes_time_to_first_token_and_overhead_until_it(metrics: Metrics) -> None:
    attempt = ok(A, started=100.2, ended=101.4)
    attempt.ready_at = 100.5  # the first content
    ex = finished("chat", attempt, stream=True)
    ex.first_token_at = 100.5
    metrics.on_finish(ex)
    labels = {"model": "chat", "provider": "a"}
    assert value(metrics, "relay_time_to_first_token_seconds_sum", **labels) == pytest.approx(0.5)
    # Until the first content: 0.5 s, of which 0.3 s waiting on the provider.
    assert value(metrics, "relay_gateway_overhead_seconds_sum", provider="a") == pytest.approx(0.2)
    assert value(metrics, "relay_upstream_latency_seconds_sum", provider="a") == pytest.approx(1.2)


def test_attempts_by_kind_outcome_and_error_class(metrics: Metrics) -> None:
    # Retried on the same deployment, failed over to another target, fell back to a model.
    ex = finished("chat", failed(A), failed(A, "timeout"), failed(A2, None), ok(B), status=200)
    metrics.on_finish(ex)

    def attempts(provider: str, kind: str, outcome: str, error_class: str) -> float:
        return value(
            metrics,
            "relay_attempts_total",
            provider=provider,
            kind=kind,
            outcome=outcome,
            error_class=error_class,
        )

    assert attempts("a", "first", "error", "server_error") == 1
    assert attempts("a", "retry", "error", "timeout") == 1
    assert attempts("a", "failover", "error", "other") == 1  # no class given: "other"
    assert attempts("b", "fallback", "success", "none") == 1
    # The request is the answering provider's.
    labels = {"model": "chat", "provider": "b", "tenant": "default", "status_class": "2xx"}
    assert value(metrics, "relay_requests_total", **labels) == 1


def test_a_failed_request_counts_its_status_class(metrics: Metrics) -> None:
    metrics.on_finish(finished("chat", failed(A, "rate_limited"), status=429))
    metrics.on_finish(finished("chat", status=401, tenant=""))
    labels = {"model": "chat", "provider": "a", "tenant": "default", "status_class": "4xx"}
    assert value(metrics, "relay_requests_total", **labels) == 1
    refused = {"model": "chat", "provider": "none", "tenant": "none", "status_class": "4xx"}
    assert value(metrics, "relay_requests_total", **refused) == 1
    error = {"provider": "a", "kind": "first", "outcome": "error", "error_class": "rate_limited"}
    assert value(metrics, "relay_attempts_total", **error) == 1


def test_unconfigured_models_and_metadata_tenants_collapse_to_other(metrics: Metrics) -> None:
    for n in range(5):
        metrics.on_finish(finished(f"ondemand-{n}", ok(A), tenant=f"team-{n}"))
    # A tenant of the database keeps its name whatever the count.
    metrics.on_finish(finished("ondemand-9", ok(A), tenant="billing", tenant_id="t_1"))
    models = {"ondemand-0": 1, "ondemand-1": 1, "other": 4}  # max_label_values: 2
    for model, count in models.items():
        got = value(metrics, "relay_request_duration_seconds_count", model=model, provider="a")
        assert got == count, model
    assert value(metrics, "relay_request_duration_seconds_count", model="chat", provider="a") == 0
    metrics.on_finish(finished("chat", ok(A)))  # configured: always its own name
    assert value(metrics, "relay_request_duration_seconds_count", model="chat", provider="a") == 1
    tenants = {"team-0": 1, "team-1": 1, "other": 3, "billing": 1}
    for tenant, count in tenants.items():
        got = sum(
            value(
                metrics,
                "relay_requests_total",
                model=m,
                provider="a",
                tenant=tenant,
                status_class="2xx",
            )
            for m in ("ondemand-0", "ondemand-1", "other")
        )
        assert got == count, tenant


def test_cache_hits_and_misses_are_present_at_zero_and_counted(metrics: Metrics) -> None:
    assert metrics.registry is not None
    # Present at 0 for every configured model before any traffic.
    assert metrics.registry.get_sample_value("relay_cache_hits_total", {"model": "chat"}) == 0
    assert metrics.registry.get_sample_value("relay_cache_misses_total", {"model": "chat"}) == 0
    hit = SimpleNamespace(**{k: getattr(finished(), k) for k in Exchange.__slots__})
    hit.cache_hit, hit.attempts, hit.answer = True, [], None
    metrics.on_finish(hit)  # type: ignore[arg-type]
    miss = SimpleNamespace(**vars(hit))
    miss.cache_hit = False
    metrics.on_finish(miss)  # type: ignore[arg-type]
    metrics.on_finish(finished("chat", ok(A)))  # no cache: neither
    assert value(metrics, "relay_cache_hits_total", model="chat") == 1
    assert value(metrics, "relay_cache_misses_total", model="chat") == 1


def test_limits_hooks_count_refusals_and_redis_degraded(metrics: Metrics) -> None:
    assert value(metrics, "relay_rate_limit_rejections_total", meter="requests", scope="key") == 0
    metrics.limit_refused("requests", "key")
    metrics.limit_refused("tokens", "tenant")
    metrics.limit_refused("spend", "tenant")
    metrics.limit_refused("spend", "tenant")
    assert value(metrics, "relay_rate_limit_rejections_total", meter="requests", scope="key") == 1
    assert value(metrics, "relay_rate_limit_rejections_total", meter="tokens", scope="tenant") == 1
    assert value(metrics, "relay_budget_rejections_total", scope="tenant") == 2
    metrics.budget_alert("key")
    assert value(metrics, "relay_budget_alerts_total", scope="key") == 1
    assert value(metrics, "relay_redis_degraded") == 0
    metrics.redis_degraded(True)
    metrics.redis_degraded(True)  # still the same episode
    assert value(metrics, "relay_redis_degraded") == 1
    metrics.redis_degraded(False)
    assert value(metrics, "relay_redis_degraded") == 0
    assert value(metrics, "relay_redis_degradations_total") == 1


def test_sampled_gauges_ledger_and_breakers(metrics: Metrics) -> None:
    ledger = SimpleNamespace(pending=7, written=10, dropped=1, batches=2)
    states = {"a/chat-up": "closed"}
    metrics.watch(inflight=lambda: (3, 2), ledger=ledger, breakers=lambda: states)  # type: ignore[arg-type]
    assert value(metrics, "relay_inflight_requests") == 3
    assert value(metrics, "relay_open_streams") == 2
    assert value(metrics, "relay_ledger_queue_depth") == 7
    assert value(metrics, "relay_ledger_rows_total") == 10
    ledger.written, ledger.batches, ledger.dropped = 25, 5, 1
    assert value(metrics, "relay_ledger_rows_total") == 25  # deltas, not counted twice
    assert value(metrics, "relay_ledger_batches_total") == 5
    assert value(metrics, "relay_ledger_dropped_rows_total") == 1
    assert value(metrics, "relay_circuit_breaker_state", deployment="a/chat-up") == 0
    metrics.breaker_changed("a/chat-up", "closed", "open")
    states["a/chat-up"] = "open"
    assert value(metrics, "relay_circuit_breaker_state", deployment="a/chat-up") == 2
    assert (
        value(
            metrics, "relay_circuit_breaker_transitions_total", deployment="a/chat-up", state="open"
        )
        == 1
    )


def test_render_and_stop(metrics: Metrics) -> None:
    metrics.on_finish(finished("chat", ok(A)))

    async def run() -> bytes:
        metrics.start(asyncio.get_running_loop())
        text = await metrics.render()
        await metrics.stop()
        return text

    text = asyncio.run(run()).decode()
    assert (
        'relay_requests_total{model="chat",provider="a",status_class="2xx",tenant="default"} 1.0'
        in text
    )
    assert 'relay_build_info{python="' in text


def test_metrics_settings_are_checked() -> None:
    from relay.config import ConfigError

    text = "metrics: {max_label_values: 0, flush_interval_s: 0, enabled: true}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t.yaml", {})
    assert info.value.problems == [
        "metrics.max_label_values: expected at least 1, got 0",
        "metrics.flush_interval_s: expected a positive number of seconds, got 0.0",
    ]
    with pytest.raises(ConfigError) as info:
        parse_config("metrics: {max_labels: 3}\n", "t.yaml", {})
    assert "max_labels" in info.value.problems[0]
