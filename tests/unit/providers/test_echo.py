"""The offline echo provider counts large inputs off the event loop, like every local count."""

from __future__ import annotations

import asyncio
import threading

import msgspec
import pytest

from relay.config.model import ProviderConfig
from relay.dialects import OPENAI_DIALECTS
from relay.exchange import Attempt, Deployment, Exchange
from relay.native import counter_for
from relay.providers import echo


def test_a_large_prompt_is_counted_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[tuple[str, bool]] = []

    class Spy:
        def __init__(self, encoding: str) -> None:
            self._counter = counter_for(encoding)
            self._loop = threading.get_ident()

        def count_chat(self, body: bytes) -> int:
            threads.append(("prompt", threading.get_ident() == self._loop))
            return self._counter.count_chat(body)

        def count(self, text: str) -> int:
            threads.append(("reply", threading.get_ident() == self._loop))
            return self._counter.count(text)

    monkeypatch.setattr(echo, "counter_for", Spy)
    provider = echo.EchoProvider("echo", ProviderConfig(kind="echo"))
    text = "lorem ipsum dolor sit amet " * 40_000
    for content, on_loop in ((text, False), ("hi", True)):
        body = msgspec.json.encode(
            {"model": "echo", "messages": [{"role": "user", "content": content}]}
        )
        ex = Exchange("r", OPENAI_DIALECTS[0].endpoint, body, {}, dialect=OPENAI_DIALECTS[0])
        OPENAI_DIALECTS[0].parse(ex)
        threads.clear()
        asyncio.run(provider.prepare(ex, Attempt(Deployment("echo", "echo", "echo"))))
        assert threads == [("prompt", on_loop), ("reply", on_loop)]
