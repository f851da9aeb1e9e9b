"""Cost from prices; local counting when a provider reports no usage."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from relay.accounting import usage as usage_module
from relay.accounting.usage import Accountant, cost_usd, count_locally
from relay.config.model import Pricing
from relay.dialects import ANTHROPIC_DIALECTS, OPENAI_DIALECTS
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Usage
from relay.native import ON_LOOP_BYTES, counter_for


def test_cost_splits_cached_prompt_tokens() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, cached_tokens=400_000)
    pricing = Pricing(input=2.5, output=10.0, cached=1.25)
    assert cost_usd(usage, pricing) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.5 * 10.0)


def test_cached_price_defaults_to_input() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=1000)
    assert cost_usd(usage, Pricing(input=3.0)) == pytest.approx(0.003)


BODY = b'{"model":"m","messages":[{"role":"user","content":"hello world"}]}'
PRICED = Deployment("p", "m", "m", Pricing(input=1.0, output=2.0))


def answered(body: bytes, text: str | None, endpoint: Endpoint = Endpoint.CHAT) -> Exchange:
    dialects = (*OPENAI_DIALECTS, *ANTHROPIC_DIALECTS)
    dialect = next(d for d in dialects if d.endpoint is endpoint)
    ex = Exchange("r", endpoint, body, {}, dialect=dialect)
    dialect.parse(ex)
    attempt = Attempt(PRICED)
    if text is not None:
        attempt.text = lambda: text
    ex.attempts.append(attempt)
    ex.answer = attempt
    return ex


def test_local_count_from_json_body() -> None:
    ex = answered(BODY, "Hi there, friend")
    asyncio.run(Accountant().settle(ex))
    counter = counter_for("o200k_base")
    assert ex.usage is not None and ex.usage.counted_locally
    assert ex.usage.prompt_tokens == counter.count_chat(BODY)
    assert ex.usage.completion_tokens == counter.count("Hi there, friend")
    assert ex.cost_usd == pytest.approx(
        (ex.usage.prompt_tokens * 1.0 + ex.usage.completion_tokens * 2.0) / 1e6
    )


def test_tool_calls_and_refusals_count_as_completion() -> None:
    from relay.wire.openai import probe_response

    body = (
        b'{"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"no",'
        b'"tool_calls":[{"id":"c","type":"function","function":{"name":"get_weather",'
        b'"arguments":"{\\"city\\":\\"Paris\\"}"}}]},"finish_reason":"tool_calls"}]}'
    )
    text = "".join(c.generated_text() for c in probe_response(body).choices or ())
    assert text == 'noget_weather{"city":"Paris"}'
    ex = answered(BODY, text)
    asyncio.run(Accountant().settle(ex))
    assert ex.usage is not None and ex.usage.completion_tokens == counter_for("o200k_base").count(
        text
    )


def test_no_response_means_no_local_count() -> None:
    ex = answered(BODY, None)
    asyncio.run(Accountant().settle(ex))
    assert ex.usage is None and ex.cost_usd is None


def test_reported_usage_is_preferred_and_priced() -> None:
    ex = answered(BODY, "ignored")
    ex.attempts[0].usage = Usage(prompt_tokens=10, completion_tokens=20)
    asyncio.run(Accountant().settle(ex))
    assert ex.usage is not None and not ex.usage.counted_locally
    assert ex.cost_usd == pytest.approx((10 * 1.0 + 20 * 2.0) / 1e6)


def test_only_the_answering_attempt_counts() -> None:
    ex = answered(BODY, None)
    discarded = ex.attempts[0]
    discarded.usage = Usage(prompt_tokens=999, completion_tokens=999)
    last = Attempt(PRICED, 1)
    last.usage = Usage(prompt_tokens=1, completion_tokens=1)
    ex.attempts.append(last)
    ex.answer = last
    asyncio.run(Accountant().settle(ex))
    assert ex.usage is not None and ex.usage.prompt_tokens == 1


def test_a_failed_request_is_not_priced() -> None:
    """No attempt answered (the last one failed before any content): nothing is counted,
    however much text or usage the failed attempt holds."""
    ex = answered(BODY, "partial text")
    ex.answer = None
    ex.attempts[0].error = "server_error"
    asyncio.run(Accountant().settle(ex))
    assert ex.usage is None and ex.cost_usd is None


def test_legacy_completion_prompt_list_counts_each() -> None:
    body = b'{"model":"m","prompt":["hello world","hello world"]}'
    ex = answered(body, "ok", Endpoint.COMPLETIONS)
    usage = count_locally(ex, "cl100k_base", "ok")
    assert usage.prompt_tokens == 2 * counter_for("cl100k_base").count("hello world")


def test_large_texts_are_counted_off_the_event_loop() -> None:
    """A 4 MiB completion takes about a second to count: the loop must keep turning."""
    text = "lorem ipsum dolor sit amet " * (4 * 1024 * 1024 // 27)
    assert len(text) > ON_LOOP_BYTES
    ex = answered(BODY, text)
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def main() -> None:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        await Accountant().settle(ex)
        stop.set()
        await tick

    asyncio.run(main())
    assert ex.usage is not None and ex.usage.completion_tokens > 100_000
    # The ticker ran throughout; no gap anywhere near the counting time.
    assert len(gaps) > 10 and max(gaps) < 0.1


def test_body_nested_too_deeply_for_the_counter_is_never_free() -> None:
    deep = (
        b'{"model":"m","messages":[{"role":"user","content":"hi","x":'
        + b"[" * 200
        + b"]" * 200
        + b"}]}"
    )
    ex = answered(deep, "ok")
    asyncio.run(Accountant().settle(ex))
    assert ex.usage is not None and ex.usage.prompt_tokens > 0


def test_messages_prompt_counts_system_blocks_tool_use_results_and_tools() -> None:
    """An Anthropic request is counted as one: not with the chat counter, which saw none of
    ``system``, the blocks, ``tool_use`` or ``tool_result`` (19 tokens for about 3,500)."""
    system = "You are a coding agent working in a large repository. " * 60
    result = "def handler(request):\n    return respond(request.body)\n" * 80
    request: dict[str, Any] = {
        "model": "m",
        "max_tokens": 10,
        "system": system,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "app.py"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": result}],
            },
        ],
        "tools": [{"name": "read_file", "input_schema": {"type": "object"}}],
    }  # fmt: skip
    ex = answered(json.dumps(request).encode(), "done", Endpoint.MESSAGES)
    asyncio.run(Accountant().settle(ex))
    c = counter_for("o200k_base").count
    want = (
        3
        + (3 + c("system") + c(system))
        + (3 + c("user") + c("Fix the bug."))
        + (3 + c("assistant") + c("read_file") + c('{"path":"app.py"}'))
        + (3 + c("user") + c(result))
        + c('[{"input_schema":{"type":"object"},"name":"read_file"}]')
    )
    assert want > 1500
    assert ex.usage is not None and ex.usage.prompt_tokens == want


def _on_loop_or_thread(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, for every local count, whether it ran on the event loop's thread."""
    on_loop: list[bool] = []
    count = usage_module.count_locally
    loop_thread = threading.get_ident()

    def spy(*args: Any) -> Usage:
        on_loop.append(threading.get_ident() == loop_thread)
        return count(*args)

    monkeypatch.setattr(usage_module, "count_locally", spy)
    return on_loop


def test_off_loop_decision_is_sized_by_the_text_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A translated Responses request is small, but its chat request carries the stored
    history: that is what is counted, so that is what decides."""
    rng = random.Random(7)
    history = "".join(rng.choice("abcdefghij klmnop,.0123") for _ in range(1 << 20))
    chat_body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": history}]}
    ).encode()
    chat = Exchange("r", Endpoint.CHAT, chat_body, {})
    ex = Exchange("r", Endpoint.RESPONSES, b'{"model":"m","input":"and now?"}', {})
    ex.translation = SimpleNamespace(chat=chat)
    attempt = Attempt(PRICED)
    attempt.text = lambda: "fine"
    ex.attempts.append(attempt)
    ex.answer = attempt
    on_loop = _on_loop_or_thread(monkeypatch)

    async def settle() -> None:
        await Accountant().settle(ex)

    asyncio.run(settle())
    assert on_loop == [False]
    assert ex.usage is not None and ex.usage.prompt_tokens == counter_for("o200k_base").count_chat(
        chat_body
    )
    # A small request and answer are still counted in place.
    small = answered(BODY, "Hi")
    asyncio.run(Accountant().settle(small))
    assert on_loop == [False, True]


def test_stream_text_counted_as_it_arrived_and_an_early_prompt_count_are_used() -> None:
    ex = answered(BODY, "tail")
    attempt = ex.attempts[0]
    attempt.text_tokens = 1000  # counted by the stream's tally, its text dropped
    attempt.prompt_tokens = 77  # counted before the answer (a translated message_start)
    asyncio.run(Accountant().settle(ex))
    assert ex.usage is not None
    assert ex.usage.completion_tokens == 1000 + counter_for("o200k_base").count("tail")
    assert ex.usage.prompt_tokens == 77
