"""Model and deployment limits through a real ``relay serve`` and the fake OpenAI provider:
``models.X.limits`` is one more limit of the limits stage; ``targets[].limits`` (a provider's
quota) skips a deployment at its limit like an open circuit, answers a 429 in the dialect's
envelope when every deployment is at its limit, reserves a request's tokens on the deployment
tried and settles them once on the one that answered; a skipped deployment is charged
nothing."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from relay.native import SharedLimitTable, monotonic
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway

TPM = 600  # a token every 0.1 s: a request's own time is a small fraction of one token
PROMPT = [{"role": "user", "content": "one two three four five six seven"}]


def config(up: FakeUpstream, models: dict[str, Any], workers: int = 1) -> dict[str, Any]:
    provider = {"kind": "openai", "base_url": up.base_url, "api_key": UPSTREAM_KEY}
    return {
        "server": {"drain_timeout_s": 1.0, "workers": workers},
        "providers": {"fa": provider, "fb": provider},
        "models": models,
        "database": {"url": "none"},
    }


def post(
    gateway: Gateway, body: Any, path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(
        "POST", path, body=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data)


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": PROMPT, **extra}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Gateway]]:
    """Gateways started by a test, stopped after it."""
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.stop()


def start(served: list[Gateway], tmp_path: Path, cfg: dict[str, Any], workers: int = 1) -> Gateway:
    gateway = Gateway(cfg, tmp_path, workers=workers)
    served.append(gateway)
    return gateway


def test_a_deployment_at_its_quota_is_skipped_and_every_one_at_it_is_a_429(
    tmp_path: Path, fake_upstream: FakeUpstream, served: list[Gateway]
) -> None:
    models = {
        "m": {
            "targets": [
                {"provider": "fa", "model": "gpt-4o-mini", "limits": {"rpm": 2}},
                {"provider": "fb", "model": "gpt-4o-mini", "limits": {"rpm": 3}},
            ]
        }
    }
    gateway = start(served, tmp_path, config(fake_upstream, models))
    answered = Counter()
    for _ in range(5):
        status, headers, body = post(gateway, chat("m"))
        assert status == 200, body
        answered[headers["x-relay-provider"]] += 1
    assert answered == {"fa": 2, "fb": 3}
    status, headers, body = post(gateway, chat("m"))
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    error = body["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "model 'm': every deployment is at its provider quota" in error["message"]
    messages = {"model": "m", "max_tokens": 5, "messages": PROMPT}
    status, headers, body = post(gateway, messages, "/v1/messages")
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"


def test_a_burst_on_two_workers_gets_exactly_the_quota(
    tmp_path: Path, fake_upstream: FakeUpstream, served: list[Gateway]
) -> None:
    models = {"m": {"targets": [{"provider": "fa", "model": "gpt-4o-mini", "limits": {"rpm": 5}}]}}
    gateway = start(served, tmp_path, config(fake_upstream, models), workers=2)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: post(gateway, chat("m"))[0], range(16)))
    assert sorted(statuses) == [200] * 5 + [429] * 11


def test_a_model_limit_applies_to_every_caller_of_the_model(
    tmp_path: Path, fake_upstream: FakeUpstream, served: list[Gateway]
) -> None:
    models = {
        "m": {"provider": "fa", "model": "gpt-4o-mini", "limits": {"rpm": 3, "tpm": 100000}},
        "free": {"provider": "fa", "model": "gpt-4o-mini"},
        "small": {"provider": "fb", "model": "gpt-4o-mini", "limits": {"tpm": 50}},
    }
    gateway = start(served, tmp_path, config(fake_upstream, models))
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: post(gateway, chat("m"))[0], range(10)))
    assert sorted(statuses) == [200] * 3 + [429] * 7
    status, headers, body = post(gateway, chat("m"))
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert post(gateway, chat("free"))[0] == 200  # another model is not limited
    # A reservation the model's tokens per minute can never hold.
    status, _, body = post(gateway, chat("small", max_tokens=100))
    assert status == 429
    assert body["error"]["type"] == "tokens"


def cell_tokens(table: SharedLimitTable, cell: str, since: float) -> float | None:
    """Tokens the cell holds charged since ``since`` (an empty cell at that time); None when
    the cell was never charged."""
    tat = table.tat(cell)
    if tat is None:
        return None
    return (tat - since) / (60.0 / TPM)


def settled(table: SharedLimitTable, cell: str, since: float, real: float) -> float | None:
    """What the cell holds once settled to ``real`` tokens (waited for: the settlement runs
    after the last byte; the reservation, counted locally, is not known exactly here), or
    what it holds after 10 s if it never is."""
    deadline = time.monotonic() + 10
    while True:
        held = cell_tokens(table, cell, since)
        if (held is not None and real - 1e-6 <= held < real + 1) or time.monotonic() > deadline:
            return held
        time.sleep(0.02)


def table_of(gateway: Gateway) -> SharedLimitTable:
    [segment] = Path("/dev/shm").glob(f"relay-limits-{gateway.process.pid}-*")
    return SharedLimitTable.attach(segment.name)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
def test_tokens_are_reserved_per_attempt_and_settled_on_the_deployment_that_answered(
    tmp_path: Path, fake_upstream: FakeUpstream, served: list[Gateway], stream: bool
) -> None:
    quota = {"tpm": TPM}
    models = {
        # The first deployment fails (500): its reservation is given back; the fallback's
        # deployment answers and keeps the real usage.
        "m": {
            "targets": [{"provider": "fa", "model": "error-500", "limits": quota}],
            "fallbacks": ["n"],
        },
        "n": {"targets": [{"provider": "fb", "model": "gpt-4o-mini", "limits": quota}]},
    }
    gateway = start(served, tmp_path, config(fake_upstream, models))
    table = table_of(gateway)
    max_tokens = 40
    since = monotonic()
    body = chat("m", max_tokens=max_tokens, stream=stream)
    if stream:
        body["stream_options"] = {"include_usage": True}
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode())
        response = conn.getresponse()
        events = [
            json.loads(line[6:])
            for line in response.read().decode().splitlines()
            if line.startswith("data: {")
        ]
        conn.close()
        assert response.status == 200
        assert response.getheader("x-relay-provider") == "fb"
        usage = events[-1]["usage"]
    else:
        status, headers, answer = post(gateway, body)
        assert status == 200 and headers["x-relay-provider"] == "fb"
        usage = answer["usage"]
    real = usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] > 0
    held = settled(table, "d:fb/gpt-4o-mini:tpm", since, real)
    assert held is not None and real - 1e-6 <= held < real + 1, (held, real)
    # The failed deployment's reservation was given back: its cell is empty again.
    tat = table.tat("d:fa/error-500:tpm")
    assert tat is not None and tat <= monotonic()


def test_a_skipped_deployment_is_charged_nothing(
    tmp_path: Path, fake_upstream: FakeUpstream, served: list[Gateway]
) -> None:
    models = {
        "m": {
            "targets": [
                {"provider": "fa", "model": "gpt-4o-mini", "limits": {"rpm": 1, "tpm": TPM}}
            ],
            "fallbacks": ["n"],
        },
        "n": {"provider": "fb", "model": "gpt-4o-mini"},
    }
    gateway = start(served, tmp_path, config(fake_upstream, models))
    table = table_of(gateway)
    since = monotonic()
    status, headers, first = post(gateway, chat("m", max_tokens=30))
    assert status == 200 and headers["x-relay-provider"] == "fa"
    real = first["usage"]["total_tokens"]
    held = settled(table, "d:fa/gpt-4o-mini:tpm", since, real)
    assert held is not None and real - 1e-6 <= held < real + 1
    tat = table.tat("d:fa/gpt-4o-mini:tpm")
    # At its rpm now: skipped, the fallback answers, and fa's tokens cell did not move.
    status, headers, _ = post(gateway, chat("m", max_tokens=30))
    assert status == 200 and headers["x-relay-provider"] == "fb"
    assert table.tat("d:fa/gpt-4o-mini:tpm") == tat
