"""The Anthropic dialect's checks of content blocks: what a translator reads has its type."""

from __future__ import annotations

import pytest

from relay.dialects import ANTHROPIC_DIALECTS
from relay.errors import InvalidRequest
from relay.exchange import Exchange

MESSAGES = ANTHROPIC_DIALECTS[0]


def parse(body: bytes) -> Exchange:
    ex = Exchange("req_1", MESSAGES.endpoint, body, {}, dialect=MESSAGES)
    MESSAGES.parse(ex)
    return ex


def body_with(content: bytes, extra: bytes = b"") -> bytes:
    return (
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":' + content + b"}]"
        + extra + b"}"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "extra", "param"),
    [
        (b'[{"type":"text","text":5}]', b"", "messages[0].content[0].text"),
        (b'[{"type":[],"text":"a"}]', b"", "messages[0].content[0].type"),
        (b'[{"text":"a"}]', b"", "messages[0].content[0].type"),
        (b'[{"type":"tool_result","tool_use_id":"t","content":5}]', b"", "messages[0].content[0].content"),
        (b'[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":{}}]}]', b"", "messages[0].content[0].content[0].text"),
        (b'[{"type":"tool_use","id":"t","name":"f","input":"x"}]', b"", "messages[0].content[0].input"),
        (b'"hi"', b',"system":[{"type":"text","text":2.5}]', "system[0].text"),
        (b'"hi"', b',"tools":[{"name":{"a":1},"input_schema":{}}]', "tools[0].name"),
    ],
)  # fmt: skip
def test_block_shapes_are_checked(content: bytes, extra: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(body_with(content, extra))
    assert info.value.param == param
    assert info.value.message.startswith(param + ": expected")


def test_documented_blocks_pass() -> None:
    parse(
        body_with(
            b'[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},'
            b'{"type":"image","source":{"type":"url","url":"https://x"}},'
            b'{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"}]}]',
            b',"system":[{"type":"text","text":"s"}],"tools":[{"name":"f","input_schema":{}}]',
        )
    )
