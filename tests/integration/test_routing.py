"""Routing and resilience through the real server, driven with the openai SDK: retries,
failover, fallback chains, circuit breakers, the retry budget, timeouts and streams that
fail before or after their commit point. Faults are injected by the fake providers
(``fault-<kind>-<n>-<tag>`` model names, see tests/fakes/openai_upstream.py)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream, make_fake_upstream_fixture
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway
from tests.integration.tenancy import MASTER, call

fake_b = make_fake_upstream_fixture(scope="module", api_key=UPSTREAM_KEY, name="fake_b")

MESSAGES: Any = [{"role": "user", "content": "hello world"}]
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


def routing_config(a: FakeUpstream, b: FakeUpstream) -> dict[str, Any]:
    def on_a(model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "a", "model": model, **extra}

    return {
        "server": {"drain_timeout_s": 1.0},
        "providers": {
            "a": {
                "kind": "openai",
                "base_url": a.base_url,
                "api_key": UPSTREAM_KEY,
                "timeouts": {"connect_s": 2, "first_byte_s": 1, "idle_s": 0.5, "total_s": 5},
            },
            "b": {"kind": "openai", "base_url": b.base_url, "api_key": UPSTREAM_KEY},
            "local": {"kind": "echo"},
        },
        "routing": {
            "default_model": "plain",
            "allow_direct": True,
            "breaker": {"min_requests": 4, "failure_rate": 0.5, "cooldown_s": 1.0},
            "max_request_timeout_s": 10,
            # Many deliberate failures in a few seconds: the budget is tested on its own.
            "retry_budget": {"ratio": 1.0, "min_retries": 100},
        },
        "models": {
            "plain": on_a("gpt-4o-mini"),
            "backup": {"provider": "b", "model": "gpt-4o-mini"},
            "large": {"provider": "b", "model": "gpt-4o"},
            "echo": {"provider": "local"},
            "retry-503": on_a("fault-503-2-r1", retries={"max": 2, **FAST}),
            "retry-429": on_a("fault-429-1-r2", retries=1),
            "retry-429q": on_a("fault-429q-1-r3", retries=1),
            "retry-reset": on_a("fault-reset-1-r4", retries=1),
            "never-400": on_a("fault-400-all-n1", retries={"max": 3, **FAST}),
            "never-422": on_a("fault-422-all-n2", retries={"max": 3, **FAST}),
            "to-backup": on_a("fault-500-all-f1", retries={"max": 1, **FAST}, fallbacks=["backup"]),
            "to-echo": on_a("fault-reset-all-f2", fallbacks=["echo"]),
            "two-targets": {
                "targets": [
                    {"provider": "a", "model": "fault-502-all-t1", "weight": 3},
                    {"provider": "b", "model": "gpt-4o-mini", "weight": 1},
                ],
            },
            "too-long": on_a(
                "fault-ctx-all-c1", context_window_fallbacks=["large"], fallbacks=["backup"]
            ),
            "refused": on_a("fault-policy-all-p1", content_policy_fallbacks=["large"]),
            "breaking": on_a("fault-503-4-br", retries=0, fallbacks=["backup"]),
            "lonely": on_a("fault-503-all-lo", retries=0),
            "header-chain": on_a("fault-500-all-h1", retries=0),
            "slowish": {"provider": "b", "model": "slow-800"},
            "stream-stall-first": on_a("fault-stallbody-all-s1", fallbacks=["backup"]),
            "stream-reset-first": on_a("fault-reset-1-s2", retries=1),
            "stream-cut": on_a(
                "fault-cut-all-m1", retries={"max": 2, **FAST}, fallbacks=["backup"]
            ),
            "stream-stall-mid": on_a("stall-mid-stream", retries=2, fallbacks=["backup"]),
            "trickle": on_a("trickle-100-tr1"),
        },
    }


@pytest.fixture(scope="module")
def gw(
    fake_upstream: FakeUpstream, fake_b: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gateway = Gateway(routing_config(fake_upstream, fake_b), tmp_path_factory.mktemp("routing"))
    yield gateway
    gateway.stop()


@pytest.fixture
def a(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.reset()
    return fake_upstream


@pytest.fixture
def b(fake_b: FakeUpstream) -> FakeUpstream:
    fake_b.reset()
    return fake_b


def client(gateway: Gateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="client-key",
        max_retries=0,
        timeout=20,
        default_headers=headers or None,
    )


def chat(gateway: Gateway, model: str, **headers: str) -> tuple[Any, dict[str, str]]:
    raw = client(gateway, **headers).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES
    )
    return raw.parse(), {k.lower(): v for k, v in raw.headers.items()}


def post(
    gateway: Gateway, body: dict[str, Any], **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body),
        headers={"content-type": "application/json", **headers},
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def events(data: bytes) -> list[bytes]:
    return [e for e in data.split(b"\n\n") if e.strip()]


# -- retries -------------------------------------------------------------------------------------


def test_retry_then_success(gw: Gateway, a: FakeUpstream) -> None:
    reply, headers = chat(gw, "retry-503")
    assert reply.choices[0].message.content == "Echo: hello world"
    assert a.calls("fault-503-2-r1") == 3
    assert headers["x-relay-attempts"] == "3"
    assert headers["x-relay-provider"] == "a"


def test_retry_after_is_honoured(gw: Gateway, a: FakeUpstream) -> None:
    started = time.monotonic()
    _, headers = chat(gw, "retry-429")
    assert time.monotonic() - started >= 0.9  # the provider said retry-after: 1
    assert headers["x-relay-attempts"] == "2" and a.calls("fault-429-1-r2") == 2
    started = time.monotonic()
    _, headers = chat(gw, "retry-429q")  # x-ratelimit-reset-requests: 50ms, nothing else
    assert headers["x-relay-attempts"] == "2" and time.monotonic() - started < 0.9


def test_connection_reset_is_retried(gw: Gateway, a: FakeUpstream) -> None:
    _, headers = chat(gw, "retry-reset")
    assert headers["x-relay-attempts"] == "2" and a.calls("fault-reset-1-r4") == 2


@pytest.mark.parametrize(("model", "status"), [("never-400", 400), ("never-422", 422)])
def test_client_errors_are_never_retried(
    gw: Gateway, a: FakeUpstream, model: str, status: int
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        chat(gw, model)
    assert info.value.status_code == status
    assert info.value.response.headers["x-relay-attempts"] == "1"
    assert sum(a.calls().values()) == 1


# -- failover and fallbacks ------------------------------------------------------------------------


def test_fallback_to_a_second_provider(gw: Gateway, a: FakeUpstream, b: FakeUpstream) -> None:
    reply, headers = chat(gw, "to-backup")
    assert reply.choices[0].message.content == "Echo: hello world"
    assert a.calls("fault-500-all-f1") == 2  # the first attempt and its retry
    assert b.calls("gpt-4o-mini") == 1
    assert (headers["x-relay-provider"], headers["x-relay-model"]) == ("b", "gpt-4o-mini")
    assert headers["x-relay-attempts"] == "3"


def test_fallback_to_the_echo_provider(gw: Gateway, a: FakeUpstream) -> None:
    reply, headers = chat(gw, "to-echo")
    assert reply.choices[0].message.content == "You said: hello world"
    assert headers["x-relay-provider"] == "local" and headers["x-relay-attempts"] == "2"


def test_failover_across_targets_without_waiting(gw: Gateway, a: FakeUpstream) -> None:
    attempts = [chat(gw, "two-targets")[1]["x-relay-attempts"] for _ in range(12)]
    assert set(attempts) <= {"1", "2"} and "2" in attempts  # weight 3:1 on the failing one


def test_context_window_and_content_policy_chains(
    gw: Gateway, a: FakeUpstream, b: FakeUpstream
) -> None:
    _, headers = chat(gw, "too-long")
    assert headers["x-relay-model"] == "gpt-4o"  # its context chain, not its generic one
    _, headers = chat(gw, "refused")
    assert headers["x-relay-model"] == "gpt-4o" and headers["x-relay-attempts"] == "2"
    assert b.calls("gpt-4o-mini") == 0


def test_fallbacks_header_overrides_the_chain(gw: Gateway, a: FakeUpstream) -> None:
    with pytest.raises(openai.InternalServerError):
        chat(gw, "header-chain")
    _, headers = chat(gw, "header-chain", **{"x-relay-fallbacks": "echo, backup"})
    assert headers["x-relay-provider"] == "local"
    with pytest.raises(openai.BadRequestError) as info:
        chat(gw, "header-chain", **{"x-relay-fallbacks": "gpt-9"})
    assert "x-relay-fallbacks: 'gpt-9' not configured" in info.value.message


# -- circuit breakers ------------------------------------------------------------------------------


def test_breaker_opens_skips_and_recovers(gw: Gateway, a: FakeUpstream, b: FakeUpstream) -> None:
    providers = [chat(gw, "breaking")[1]["x-relay-provider"] for _ in range(4)]
    assert providers == ["b"] * 4 and a.calls("fault-503-4-br") == 4  # failed, fell back
    # Open: the failing deployment receives no call, the fallback answers at once.
    for _ in range(5):
        _, headers = chat(gw, "breaking")
        assert headers["x-relay-provider"] == "b" and headers["x-relay-attempts"] == "1"
    assert a.calls("fault-503-4-br") == 4
    time.sleep(1.2)  # the cooldown: a probe goes through, succeeds (the fault is over), closes
    assert chat(gw, "breaking")[1]["x-relay-provider"] == "a"
    assert chat(gw, "breaking")[1]["x-relay-provider"] == "a"
    assert a.calls("fault-503-4-br") == 6
    assert "circuit of a/fault-503-4-br: closed -> open" in gw.logs()
    assert "circuit of a/fault-503-4-br: half_open -> closed" in gw.logs()


def test_every_circuit_open_is_a_503_with_retry_after(gw: Gateway, a: FakeUpstream) -> None:
    for _ in range(4):
        with pytest.raises(openai.InternalServerError):
            chat(gw, "lonely")
    with pytest.raises(openai.InternalServerError) as info:
        chat(gw, "lonely")
    assert info.value.status_code == 503
    assert info.value.code == "circuit_open"
    assert info.value.response.headers["retry-after"] == "1"
    assert a.calls("fault-503-all-lo") == 4


# -- timeouts ----------------------------------------------------------------------------------------


def test_timeout_header_within_bounds(gw: Gateway, b: FakeUpstream) -> None:
    assert chat(gw, "slowish")[0].choices  # 0.8 s: within the provider's timeouts
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        chat(gw, "slowish", **{"x-relay-timeout": "0.3"})
    assert info.value.status_code == 504 and time.monotonic() - started < 0.75
    status, _, data = post(
        gw, {"model": "plain", "messages": MESSAGES}, **{"x-relay-timeout": "soon"}
    )
    assert status == 400 and b"x-relay-timeout" in data


def test_slow_trickle_within_the_idle_timeout_completes(gw: Gateway, a: FakeUpstream) -> None:
    stream = client(gw).chat.completions.create(model="trickle", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: hello world"  # 100 ms gaps, idle timeout 0.5 s


# -- streams and the commit point -----------------------------------------------------------------


def test_stream_failing_before_content_falls_back_invisibly(
    gw: Gateway, a: FakeUpstream, b: FakeUpstream
) -> None:
    raw = client(gw).chat.completions.with_raw_response.create(
        model="stream-stall-first", messages=MESSAGES, stream=True
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello world"
    )
    assert raw.headers["x-relay-provider"] == "b" and raw.headers["x-relay-attempts"] == "2"
    status, headers, data = post(
        gw, {"model": "stream-reset-first", "messages": MESSAGES, "stream": True}
    )
    assert status == 200 and headers["x-relay-attempts"] == "2"
    assert events(data)[-1] == b"data: [DONE]"


@pytest.mark.parametrize(
    ("model", "code"),
    [("stream-cut", "upstream_unreachable"), ("stream-stall-mid", "upstream_timeout")],
)
def test_stream_failing_after_content_ends_with_the_error_event(
    gw: Gateway, a: FakeUpstream, b: FakeUpstream, model: str, code: str
) -> None:
    status, _, data = post(gw, {"model": model, "messages": MESSAGES, "stream": True})
    frames = events(data)
    assert status == 200 and b'"content":"Echo: "' in data
    assert json.loads(frames[-1][6:])["error"]["code"] == code
    assert b"[DONE]" not in data
    assert sum(a.calls().values()) == 1 and b.calls() == {}  # never retried after the commit


# -- names -----------------------------------------------------------------------------------------


def test_no_model_goes_to_the_default_model(gw: Gateway, a: FakeUpstream) -> None:
    status, headers, _ = post(gw, {"messages": MESSAGES, "metadata": {"team": "x"}})
    assert status == 200 and headers["x-relay-model"] == "gpt-4o-mini"
    sent = json.loads(a.requests()[-1]["raw"])
    assert sent["model"] == "gpt-4o-mini" and sent["metadata"] == {"team": "x"}


def test_provider_slash_model_names_a_deployment(gw: Gateway, b: FakeUpstream) -> None:
    reply, headers = chat(gw, "b/gpt-4o")
    assert headers["x-relay-provider"] == "b" and reply.model == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        chat(gw, "nobody/gpt-4o")


# -- the retry budget --------------------------------------------------------------------------------


def test_retry_budget_bounds_attempts_under_a_full_outage(
    fake_upstream: FakeUpstream, fake_b: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = routing_config(fake_upstream, fake_b)
    config["routing"] = {"breaker": {"enabled": False}}  # the budget alone
    config["models"] = {
        "down": {"provider": "a", "model": "fault-503-all-bud", "retries": {"max": 3, **FAST}}
    }
    gateway = Gateway(config, tmp_path_factory.mktemp("budget"))
    try:
        fake_upstream.reset()
        requests = 60

        def one(_: int) -> int:
            try:
                chat(gateway, "down")
            except openai.APIStatusError as err:
                return err.status_code
            return 200

        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(one, range(requests)))
        calls = fake_upstream.calls("fault-503-all-bud")
        assert statuses == [503] * requests
        assert requests < calls < 1.2 * requests + 3  # retries happened, within the budget
    finally:
        gateway.stop()


def budget_config(a: FakeUpstream, b: FakeUpstream) -> dict[str, Any]:
    """The default retry budget (ratio 0.2, 3 retries), no breakers: the budget alone."""
    config = routing_config(a, b)
    config["routing"] = {"breaker": {"enabled": False}}
    config["models"] = {
        "backup": {"provider": "b", "model": "gpt-4o-mini"},
        # A dead deployment whose model has a fallback (and no retries of its own).
        "down": {"provider": "a", "model": "fault-503-all-bf1", "fallbacks": ["backup"]},
        # A dead deployment with retries: its second request finds its budget spent.
        "spent": {
            "provider": "a",
            "model": "fault-503-all-bf2",
            "retries": {"max": 3, **FAST},
            "fallbacks": ["backup"],
        },
        "alone": {"provider": "a", "model": "fault-503-all-bf3", "retries": {"max": 3, **FAST}},
    }
    return config


def test_a_spent_retry_budget_still_tries_a_healthy_fallback(
    fake_upstream: FakeUpstream, fake_b: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    gateway = Gateway(budget_config(fake_upstream, fake_b), tmp_path_factory.mktemp("fallback"))
    try:
        fake_upstream.reset()
        fake_b.reset()
        # Each request fails on a once and falls back to b: the fallback is charged to b.
        for _ in range(8):
            _, headers = chat(gateway, "down")
            assert (headers["x-relay-provider"], headers["x-relay-attempts"]) == ("b", "2")
        assert fake_upstream.calls("fault-503-all-bf1") == 8

        # The first request retries a three times (within a's budget), the second finds a's
        # budget spent: not retried there, but its fallback is still tried.
        assert chat(gateway, "spent")[1]["x-relay-attempts"] == "5"
        _, headers = chat(gateway, "spent")
        assert (headers["x-relay-provider"], headers["x-relay-attempts"]) == ("b", "2")
        assert fake_upstream.calls("fault-503-all-bf2") == 5
        assert fake_b.calls("gpt-4o-mini") == 10

        # With nothing left to try, the error and the log say why the retry was not made.
        with pytest.raises(openai.InternalServerError):
            chat(gateway, "alone")
        with pytest.raises(openai.InternalServerError) as info:
            chat(gateway, "alone")
        assert info.value.response.headers["x-relay-attempts"] == "1"
        assert "retry budget" in info.value.message
        assert "a/fault-503-all-bf3" in info.value.message
        assert fake_upstream.calls("fault-503-all-bf3") == 5
        logs = gateway.logs()
        assert "retry budget of a/fault-503-all-bf2 is spent" in logs
        assert "retry budget of a/fault-503-all-bf3 is spent" in logs
    finally:
        gateway.stop()


# -- a key's allowed models ---------------------------------------------------------------------------


def test_fallbacks_never_reach_a_model_the_key_may_not_use(
    fake_upstream: FakeUpstream, fake_b: FakeUpstream, tmp_path: Any
) -> None:
    config = routing_config(fake_upstream, fake_b)
    config["routing"] = {"breaker": {"enabled": False}}
    config["auth"] = {"mode": "keys", "admin_key": MASTER}
    config["database"] = {"url": f"sqlite:///{tmp_path / 'relay.db'}"}
    config["models"] = {
        "pricey": {"provider": "b", "model": "gpt-4o"},
        "echo": {"provider": "local"},
        "cheap": {"provider": "a", "model": "fault-503-all-k1"},
        "cheap-chain": {
            "provider": "a",
            "model": "fault-503-all-k2",
            "fallbacks": ["pricey", "echo"],
        },
        "cheap-ctx": {
            "provider": "a",
            "model": "fault-ctx-all-k3",
            "context_window_fallbacks": ["pricey"],
        },
    }
    gateway = Gateway(config, tmp_path)
    try:
        fake_b.reset()
        status, tenant = call(
            gateway, "POST", "/admin/tenants",
            {"name": "frugal", "allowed_models": ["cheap", "cheap-chain", "cheap-ctx", "echo"]},
        )  # fmt: skip
        assert status == 201, tenant
        frugal = openai.OpenAI(
            base_url=gateway.base_url, api_key=tenant["api_key"], max_retries=0, timeout=20
        )

        def ask(model: str, **headers: str) -> Any:
            return frugal.chat.completions.with_raw_response.create(
                model=model, messages=MESSAGES, extra_headers=headers or None
            )

        # The header names a model the key may not use: skipped, and the error says why.
        with pytest.raises(openai.InternalServerError) as info:
            ask("cheap", **{"x-relay-fallbacks": "pricey"})
        assert info.value.status_code == 503
        assert "'pricey' not tried: this key may not use it" in info.value.message
        # The configured chain skips it too and goes on to the next allowed model.
        raw = ask("cheap-chain")
        assert raw.headers["x-relay-provider"] == "local"
        assert raw.headers["x-relay-attempts"] == "2"
        # So does the context-window chain (the 400 is then the answer).
        with pytest.raises(openai.BadRequestError) as info:
            ask("cheap-ctx")
        assert "'pricey' not tried" in info.value.message
        assert fake_b.calls() == {}
    finally:
        gateway.stop()
