"""Shared cases of the cache's unit tests: a config, exchanges, entries, answers."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from relay.cache.entry import Entry
from relay.config import Config
from relay.config.load import parse_config
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal, Usage
from relay.wire.openai import ChatRequest

CONFIG = """
providers: {p: {kind: echo}}
models:
  m: {provider: p}
  local: {provider: p, deterministic: true}
  open: {provider: p, cache: {mode: all, ttl_s: 5}}
  shut: {provider: p, cache: {mode: off}}
cache: {mode: deterministic, ignore_fields: [seed_note]}
"""


def config(text: str = CONFIG) -> Config:
    return parse_config(text, "test.yaml", env={})


def exchange(body: dict[str, Any], *, tenant: str = "t", auth: str | None = None) -> Exchange:
    raw = msgspec.json.encode(body)
    ex = Exchange("req_1", Endpoint.CHAT, raw, {}, principal=Principal(tenant=tenant))
    ex.principal.client_authorization = auth
    ex.request = msgspec.json.decode(raw, type=ChatRequest)
    ex.model = body["model"]
    ex.deployment = Deployment("p", body["model"], body["model"])
    return ex


BODY: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0,
}


def entry(body: bytes = b"{}", *, stream: bool = False) -> Entry:
    return Entry(1.0, stream, body, "chatcmpl-1", 7, "m", "p", (1, 2, 0), 0.5)


def finished(ex: Exchange, *, stream: bool) -> Exchange:
    ex.stream = stream
    ex.status = 200
    ex.answer = Attempt(Deployment("p", "m-up", "m"))
    ex.usage = Usage(3, 4, 0)
    ex.cost_usd = 0.25
    return ex


def chat_answer(message: dict[str, Any], finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion",
            "created": 11,
            "model": "m-up",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
    ).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    payload = {
        "id": "chatcmpl-5",
        "object": "chat.completion.chunk",
        "created": 12,
        "model": "m-up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"
