"""A long stream costs a bounded amount of worker memory, whatever its length.

A real ``relay serve`` (one worker) relays a 50 MB stream from a fake provider that reports no
usage, while the test samples the worker's resident memory from /proc. The text is counted as
it arrives instead of being kept, so the worker grows by a few blocks at most, and the
completion tokens the gateway counts still match the tokens of what was sent.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.native import counter_for
from tests.fakes.anthropic_upstream import start_fake_anthropic
from tests.fakes.openai_upstream import FakeUpstream, flood_piece
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway

pytestmark = pytest.mark.integration

EVENTS, SIZE = 12_800, 4096  # about 50 MB of text
FLOOD = f"flood-{EVENTS}-{SIZE}"
# Growth allowed over the warmed-up worker: a few blocks of text and reads, allocator slack
# (measured: about 1 MB; before counting as the text arrived, 47 to 141 MB).
BOUND_MB = 25


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeUpstream]:
    with start_fake_anthropic("sk-ant-test") as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(
    fake_upstream: FakeUpstream,
    fake_anthropic: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    openai = {"kind": "openai", "base_url": fake_upstream.base_url, "api_key": UPSTREAM_KEY}
    claude = {"kind": "anthropic", "base_url": fake_anthropic.base_url, "api_key": "sk-ant-test"}
    models: dict[str, Any] = {}
    for name, provider in (("openai", "openai"), ("claude", "claude")):
        models[f"{name}-warm"] = {"provider": provider, "model": "flood-200-4096"}
        models[f"{name}-long"] = {"provider": provider, "model": FLOOD}
    config = {"providers": {"openai": openai, "claude": claude}, "models": models}
    gateway = Gateway(config, tmp_path_factory.mktemp("memory"), workers=1)
    yield gateway
    gateway.stop()


def worker_pid(gateway: Gateway) -> int:
    """The one worker granian started under the gateway's main process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == gateway.process.pid:
                return int(entry)
    raise AssertionError("no worker process found")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def stream(gateway: Gateway, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """POST and read the stream to its end, keeping only its tail (the usage is there)."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=300)
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    response = conn.getresponse()
    size, tail = 0, b""
    while data := response.read(1 << 16):
        size += len(data)
        tail = (tail + data)[-(1 << 16) :]
    conn.close()
    assert response.status == 200, tail
    return size, tail


def last_data(tail: bytes, marker: bytes) -> Any:
    """The last ``data:`` JSON of the stream that contains ``marker``."""
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b"data: ") and marker in line:
            return json.loads(line[6:])
    raise AssertionError(f"no event with {marker!r} in {tail[-500:]!r}")


def request_for(path: str, model: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": "write at length"}]
    if path == "/v1/messages":
        return {"model": model, "max_tokens": 100_000, "stream": True, "messages": messages}
    return {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": messages,
    }


def relay_long(gateway: Gateway, path: str, prefix: str) -> tuple[float, bytes]:
    """Warm the worker up, then relay the long stream while sampling its memory: the growth
    over the warmed-up worker, and the stream's tail."""
    pid = worker_pid(gateway)
    for _ in range(2):
        stream(gateway, path, request_for(path, f"{prefix}-warm"))
    base = rss_mb(pid)
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        size, tail = stream(gateway, path, request_for(path, f"{prefix}-long"))
        time.sleep(0.3)  # settling and the taps run after the last byte
    finally:
        done.set()
        sampler.join()
    assert size > EVENTS * SIZE
    return peak - base, tail


def reference_tokens() -> int:
    """Tokens of the text the fake sent: no token spans two pieces."""
    return EVENTS * counter_for("o200k_base").count(flood_piece(SIZE))


def test_chat_stream_without_usage_is_counted_in_bounded_memory(gw: Gateway) -> None:
    """OpenAI to OpenAI: the native scanner's relay."""
    growth, tail = relay_long(gw, "/v1/chat/completions", "openai")
    assert growth < BOUND_MB, f"worker grew {growth:.0f} MB relaying a 50 MB stream"
    usage = last_data(tail, b'"usage"')["usage"]
    assert usage["counted_locally"] is True
    want = reference_tokens()
    assert abs(usage["completion_tokens"] - want) <= want // 1000


def test_translated_messages_stream_is_counted_in_bounded_memory(gw: Gateway) -> None:
    """An Anthropic client on an OpenAI provider: chat chunks become Messages events."""
    growth, tail = relay_long(gw, "/v1/messages", "openai")
    assert growth < BOUND_MB, f"worker grew {growth:.0f} MB relaying a 50 MB stream"
    usage = last_data(tail, b'"message_delta"')["usage"]
    assert usage["counted_locally"] is True
    want = reference_tokens()
    assert abs(usage["output_tokens"] - want) <= want // 1000


def test_anthropic_stream_passed_through_in_bounded_memory(gw: Gateway) -> None:
    """Anthropic to Anthropic: events relayed as they are, deltas read for their text."""
    growth, tail = relay_long(gw, "/v1/messages", "claude")
    assert growth < BOUND_MB, f"worker grew {growth:.0f} MB relaying a 50 MB stream"
    assert last_data(tail, b'"message_delta"')["usage"]["output_tokens"] > 0
