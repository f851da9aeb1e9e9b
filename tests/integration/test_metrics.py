"""``GET /metrics`` from the real server after known traffic: values, not names, with one worker
and with two (one scrape returns the sum; a respawned worker loses and doubles nothing), and
the Grafana dashboard's queries against what the gateway exports."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import UPSTREAM_KEY, upstream_config
from tests.integration.gateway import Gateway

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "relay-dashboard.json"
MESSAGES: Any = [{"role": "user", "content": "count these five words"}]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_config(up: FakeUpstream, **metrics: Any) -> dict[str, Any]:
    config = upstream_config(up)
    config["models"]["flaky"] = {"provider": "fake", "model": "fault-503-3-mx", "retries": 0}
    config["models"]["counted"] = {"provider": "fake", "model": "gpt-4o-mini"}
    config["models"]["counted"]["pricing"] = {"input": 1.0, "output": 2.0}
    config["routing"] = {"breaker": {"min_requests": 3, "failure_rate": 0.5, "cooldown_s": 60}}
    config["metrics"] = {"flush_interval_s": 0.1, **metrics}
    return config


def scrape(gateway: Gateway) -> Samples:
    """Every sample of one scrape, by name and labels."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    assert response.status == 200, text
    assert response.getheader("content-type", "").startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(gateway: Gateway, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``check`` holds: other workers write what they gathered every
    ``flush_interval_s`` (a scrape is exact for its own worker at once)."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape(gateway)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: never seen; last scrape: {samples}")
        time.sleep(0.05)


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=20)


def chat(gateway: Gateway, model: str, *, stream: bool = False) -> tuple[int, int, float]:
    """One request on a new connection: (prompt tokens, completion tokens, cost)."""
    with client(gateway) as sdk:
        if stream:
            chunks = list(
                sdk.chat.completions.create(
                    model=model,
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            usage = chunks[-1].usage
            assert usage is not None
            return usage.prompt_tokens, usage.completion_tokens, 0.0
        raw = sdk.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        answer = raw.parse()
        assert answer.usage is not None
        cost = float(raw.headers["x-relay-cost-usd"])
        return answer.usage.prompt_tokens, answer.usage.completion_tokens, cost


@pytest.fixture(scope="module")
def gw(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(metrics_config(fake_upstream), tmp_path_factory.mktemp("metrics"))
    yield gateway
    gateway.stop()


def test_seed_names_are_present_before_traffic(gw: Gateway) -> None:
    samples = scrape(gw)
    # Present at 0 for each configured model before a cache is configured.
    assert ("relay_cache_hits_total", frozenset({("model", "counted")})) in samples
    assert value(samples, "relay_cache_hits_total", model="counted") == 0
    assert value(samples, "relay_cache_misses_total", model="counted") == 0
    for kind in ("prompt", "completion"):
        assert ("relay_request_tokens_count", frozenset({("kind", kind)})) in samples
    assert ("relay_upstream_latency_seconds_count", frozenset({("provider", "fake")})) in samples
    build = [k for k in samples if k[0] == "relay_build_info"]
    assert len(build) == 1 and samples[build[0]] == 1


def test_known_traffic_counts_requests_tokens_cost_and_times(gw: Gateway) -> None:
    used = [chat(gw, "counted") for _ in range(5)] + [
        chat(gw, "counted", stream=True) for _ in range(2)
    ]
    samples = eventually(
        gw,
        lambda s: (
            value(
                s,
                "relay_requests_total",
                model="counted",
                provider="fake",
                tenant="default",
                status_class="2xx",
            )
            == 7
        ),
        "7 requests",
    )
    tokens = {"tenant": "default", "model": "counted"}
    assert value(samples, "relay_tokens_total", **tokens, kind="prompt") == sum(u[0] for u in used)
    assert value(samples, "relay_tokens_total", **tokens, kind="completion") == sum(
        u[1] for u in used
    )
    # The JSON answers' x-relay-cost-usd, and the streams' at the same prices.
    prompt, completion = used[5][0] + used[6][0], used[5][1] + used[6][1]
    cost = sum(u[2] for u in used) + (prompt * 1.0 + completion * 2.0) / 1e6
    assert value(samples, "relay_cost_usd_total", **tokens) == pytest.approx(cost, rel=1e-6)
    pair = {"model": "counted", "provider": "fake"}
    assert value(samples, "relay_request_duration_seconds_count", **pair) == 7
    assert value(samples, "relay_time_to_first_token_seconds_count", **pair) == 2
    assert value(samples, "relay_gateway_overhead_seconds_count", provider="fake") >= 7
    assert value(samples, "relay_upstream_latency_seconds_count", provider="fake") >= 7
    assert value(samples, "relay_request_tokens_count", kind="prompt") >= 7


def test_a_failing_upstream_counts_its_error_class_and_opens_the_breaker(gw: Gateway) -> None:
    before = scrape(gw)
    error = {"provider": "fake", "kind": "first", "outcome": "error"}
    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            chat(gw, "flaky")
    with pytest.raises(openai.RateLimitError):
        chat(gw, "error-429")
    deployment = {"deployment": "fake/fault-503-3-mx"}
    samples = eventually(
        gw,
        lambda s: value(s, "relay_circuit_breaker_state", **deployment) == 2,
        "the breaker open",
    )
    server = value(samples, "relay_attempts_total", **error, error_class="server_error")
    assert server - value(before, "relay_attempts_total", **error, error_class="server_error") == 3
    limited = value(samples, "relay_attempts_total", **error, error_class="rate_limited")
    assert limited - value(before, "relay_attempts_total", **error, error_class="rate_limited") == 1
    assert (
        value(samples, "relay_circuit_breaker_transitions_total", **deployment, state="open") == 1
    )
    failed = {"model": "flaky", "provider": "fake", "tenant": "default", "status_class": "5xx"}
    assert value(samples, "relay_requests_total", **failed) == 3
    # Open: the next request is refused by the gateway without an attempt.
    with pytest.raises(openai.InternalServerError):
        chat(gw, "flaky")
    samples = eventually(
        gw, lambda s: value(s, "relay_requests_total", **failed) == 4, "the refused request"
    )
    assert value(samples, "relay_attempts_total", **error, error_class="server_error") == server


def test_open_streams_and_requests_in_flight(gw: Gateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    body = {"model": "long-stream", "messages": MESSAGES, "stream": True}
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"}
    )
    response = conn.getresponse()
    assert response.status == 200 and response.read1(65536)  # the stream has started
    try:
        eventually(
            gw,
            lambda s: (
                value(s, "relay_open_streams") == 1 and value(s, "relay_inflight_requests") == 1
            ),
            "one open stream",
        )
    finally:
        conn.close()  # the client leaves: the gateway ends the stream
    eventually(
        gw,
        lambda s: value(s, "relay_open_streams") == 0 and value(s, "relay_inflight_requests") == 0,
        "no stream left",
    )


def test_ledger_batches_and_rows(gw: Gateway) -> None:
    chat(gw, "gpt-4o-mini")
    samples = eventually(
        gw,
        lambda s: (
            value(s, "relay_ledger_rows_total") >= 1 and value(s, "relay_ledger_queue_depth") == 0
        ),
        "ledger rows written",
    )
    assert value(samples, "relay_ledger_batches_total") >= 1
    assert value(samples, "relay_ledger_dropped_rows_total") == 0


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
    ]


def test_every_dashboard_query_names_an_exported_metric(gw: Gateway) -> None:
    chat(gw, "counted")
    chat(gw, "counted", stream=True)
    exported = {name for name, _ in scrape(gw)}
    queries = dashboard_queries()
    assert len(queries) >= 12
    for title, expr in queries:
        names = set(re.findall(r"\brelay_[a-z0-9_]+", expr))
        assert names, f"{title}: no relay_* metric in {expr!r}"
        assert names <= exported, f"{title}: {sorted(names - exported)} not exported"
    prometheus = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert "/metrics" in prometheus


def test_unconfigured_model_names_collapse_to_other(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = metrics_config(fake_upstream, max_label_values=2)
    config["default_provider"] = "fake"
    gateway = Gateway(config, tmp_path)
    try:
        for name in ("gpt-a", "gpt-b", "gpt-c", "gpt-d"):
            with client(gateway) as sdk:
                sdk.chat.completions.create(model=name, messages=MESSAGES)
        samples = scrape(gateway)
        models = {
            dict(labels)["model"]: v
            for (name, labels), v in samples.items()
            if name == "relay_request_duration_seconds_count"
        }
        assert models == {"gpt-a": 1, "gpt-b": 1, "other": 2}
    finally:
        gateway.stop()


def test_metrics_disabled_is_a_404(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    gateway = Gateway(metrics_config(fake_upstream, enabled=False), tmp_path)
    try:
        chat(gateway, "counted")
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 404
        assert "metrics.enabled is false" in body["error"]["message"]
    finally:
        gateway.stop()


# -- several workers -------------------------------------------------------------------------


def workers_of(gateway: Gateway) -> set[int]:
    """The pids of the gateway's worker processes (granian's children)."""
    pid = gateway.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children}


@pytest.fixture(scope="module")
def gw2(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(metrics_config(fake_upstream), tmp_path_factory.mktemp("metrics2"), workers=2)
    yield gateway
    gateway.stop()


def requests_2xx(samples: Samples, model: str = "counted") -> float:
    labels = {"model": model, "provider": "fake", "tenant": "default", "status_class": "2xx"}
    return value(samples, "relay_requests_total", **labels)


def files_of(gateway: Gateway) -> Path:
    """The directory the workers write their values to (a worker maps its files)."""
    pid = min(workers_of(gateway))
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if "/relay-metrics-" in line and line.endswith(".db"):
            return Path(line.split()[-1]).parent
    raise AssertionError(f"worker {pid} maps no metrics file")


def own_requests(gateway: Gateway, pid: int) -> float:
    """What one worker wrote to its own file: its 2xx requests of ``counted``."""
    path = files_of(gateway) / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    return sum(
        sample.value
        for family in MultiProcessCollector.merge([str(path)])
        for sample in family.samples
        if sample.name == "relay_requests_total" and sample.labels.get("model") == "counted"
    )


def test_two_workers_one_truth(gw2: Gateway) -> None:
    workers = workers_of(gw2)
    assert len(workers) == 2
    used = []
    # New connections until each worker has served some (the kernel spreads them).
    while not all(own_requests(gw2, pid) for pid in workers):
        assert len(used) < 60, "one worker served every request"
        used += [chat(gw2, "counted") for _ in range(4)]
        time.sleep(0.3)  # each worker writes its file every 0.1 s
    sent = len(used)
    assert sum(own_requests(gw2, pid) for pid in workers) == sent
    for _ in range(6):  # whichever worker answers the scrape, it returns the sum
        samples = scrape(gw2)
        assert requests_2xx(samples) == sent
        tokens = {"tenant": "default", "model": "counted"}
        assert value(samples, "relay_tokens_total", **tokens, kind="prompt") == sum(
            u[0] for u in used
        )
        build = [v for (name, _), v in samples.items() if name == "relay_build_info"]
        assert build == [1]


def test_a_respawned_workers_counts_are_neither_lost_nor_doubled(gw2: Gateway) -> None:
    for _ in range(5):
        chat(gw2, "renamed")
    eventually(gw2, lambda s: requests_2xx(s, "renamed") == 5, "5 requests")
    time.sleep(0.3)  # every worker has flushed (0.1 s) since
    before = workers_of(gw2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        now = workers_of(gw2)
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, "the worker was not respawned"
        time.sleep(0.1)
    gw2._wait_ready()
    samples = scrape(gw2)
    assert requests_2xx(samples, "renamed") == 5  # the dead worker's counts are kept
    files = {p.name for p in files_of(gw2).iterdir()}
    assert f"counter_{victim}.db" in files
    assert f"gauge_livesum_{victim}.db" not in files  # its live gauges left the sum
    for _ in range(3):
        chat(gw2, "renamed")
    samples = eventually(gw2, lambda s: requests_2xx(s, "renamed") >= 8, "8 requests")
    time.sleep(0.3)
    assert requests_2xx(scrape(gw2), "renamed") == 8  # and not counted twice
    # The dead worker's live gauges left the sum: nothing is in flight.
    assert value(samples, "relay_inflight_requests") == 0
    assert UPSTREAM_KEY not in gw2.logs()
