"""The built-in kinds on one exchange: rewrite's edits (spliced when parameters only), and the
guardrail's token limit counted on the loop or off it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from relay.config import parse_config
from relay.errors import PolicyBlocked
from relay.exchange import Endpoint, Principal
from relay.policies.base import PolicySpec
from relay.policies.guardrail import GuardrailPolicy
from relay.policies.rewrite import RewritePolicy
from tests.unit.policies.test_texts import exchange

CONFIG = parse_config("providers: {e: {kind: echo}}\nmodels: {m: {provider: e}}\n", "t", {})


def spec(kind: str, **settings: Any) -> PolicySpec:
    return PolicySpec("p", kind, settings, CONFIG)


def test_parameters_alone_are_spliced_into_the_clients_bytes() -> None:
    raw = b'{"model": "old",  "messages": [{"role": "user", "content": "hi"}], "max_tokens": 900}'
    ex = exchange(Endpoint.CHAT, raw)
    policy = RewritePolicy(spec("rewrite", cap={"max_tokens": 100}, model_map={"old": "new"}))
    assert policy.on_request(ex) is None
    # Splicing keeps the client's spacing; only the values changed.
    assert ex.body == (
        b'{"model": "new",  "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}'
    )
    assert ex.model == "new" and ex.request.max_tokens == 100


def test_cap_leaves_a_lower_value_and_fills_a_missing_one() -> None:
    policy = RewritePolicy(spec("rewrite", cap={"max_tokens": 100}))
    low = exchange(
        Endpoint.CHAT,
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5},
    )
    before = low.body
    policy.on_request(low)
    assert low.body is before
    missing = exchange(Endpoint.RESPONSES, {"model": "m", "input": "x"})
    policy.on_request(missing)
    assert json.loads(missing.body)["max_output_tokens"] == 100
    newer = exchange(
        Endpoint.CHAT,
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "max_completion_tokens": 500,
        },
    )
    policy.on_request(newer)
    assert json.loads(newer.body)["max_completion_tokens"] == 100
    assert "max_tokens" not in json.loads(newer.body)


def test_system_text_on_each_dialect() -> None:
    policy = RewritePolicy(
        spec("rewrite", system_prefix="P {tenant}", system_suffix="S", forbid=["logit_bias"])
    )
    chat = exchange(
        Endpoint.CHAT,
        {
            "model": "m",
            "logit_bias": {"1": 1},
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "mine"}]},
                {"role": "user", "content": "x"},
            ],
        },
    )
    chat.principal = Principal(tenant="t1")
    policy.on_request(chat)
    sent = json.loads(chat.body)
    assert "logit_bias" not in sent
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "P t1"},
        {"type": "text", "text": "mine"},
        {"type": "text", "text": "S"},
    ]
    msgs = exchange(
        Endpoint.MESSAGES,
        {
            "model": "m",
            "max_tokens": 1,
            "system": "mine",
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    policy.on_request(msgs)
    assert json.loads(msgs.body)["system"] == "P default\n\nmine\n\nS"
    assert msgs.request.system == "P default\n\nmine\n\nS"
    completion = exchange(Endpoint.COMPLETIONS, {"model": "m", "prompt": "go"})
    policy.on_request(completion)
    assert json.loads(completion.body)["prompt"] == "P default\n\ngo\n\nS"


def test_metadata_in_templates() -> None:
    policy = RewritePolicy(spec("rewrite", system_prefix="team={metadata.team}; {{literal}}"))
    ex = exchange(
        Endpoint.CHAT,
        {
            "model": "m",
            "metadata": {"team": "blue"},
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    policy.on_request(ex)
    assert json.loads(ex.body)["messages"][0] == {
        "role": "system",
        "content": "team=blue; {literal}",
    }


def test_token_limit_counted_on_the_loop_for_a_short_prompt() -> None:
    guard = GuardrailPolicy(spec("guardrail", max_prompt_tokens=5))
    ex = exchange(
        Endpoint.CHAT,
        {
            "model": "m",
            "messages": [{"role": "user", "content": "one two three four five six seven"}],
        },
    )
    with pytest.raises(PolicyBlocked) as info:
        guard.on_request(ex)
    assert info.value.code == "prompt_too_long"


def test_token_limit_counted_off_the_loop_for_a_long_prompt() -> None:
    guard = GuardrailPolicy(spec("guardrail", max_prompt_tokens=1000))
    text = " ".join(f"w{i}" for i in range(1500))
    ex = exchange(Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": text}]})
    pending = guard.on_request(ex)
    assert pending is not None
    with pytest.raises(PolicyBlocked):
        asyncio.run(pending)  # type: ignore[arg-type]
    short = exchange(
        Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": "fits " * 600}]}
    )
    pending = guard.on_request(short)
    assert pending is not None
    asyncio.run(pending)  # type: ignore[arg-type]
