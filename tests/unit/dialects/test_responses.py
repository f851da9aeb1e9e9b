"""The Responses dialect checks the members of input items that everything after it reads."""

from __future__ import annotations

import pytest

from relay.dialects import RESPONSES_DIALECTS
from relay.errors import InvalidRequest
from relay.exchange import Exchange

DIALECT = RESPONSES_DIALECTS[0]


def parse(body: bytes) -> Exchange:
    ex = Exchange("req_1", DIALECT.endpoint, body, {}, dialect=DIALECT)
    DIALECT.parse(ex)
    return ex


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"model":"m","input":[{"role":{"a":1},"content":"hi"}]}', "input[0].role: expected a string, got an object"),
        (b'{"model":"m","input":[{"role":"user","content":"a"},{"type":["x"]}]}', "input[1].type: expected a string, got an array"),
        (b'{"model":"m","input":[{"role":"user","content":[{"type":5}]}]}', "input[0].content[0].type: expected a string, got int"),
        (b'{"model":"m","input":[{"role":"user","content":["x"]}]}', "input[0].content[0]: expected an object"),
        (b'{"model":"m","input":"hi","tools":[{"type":"function","name":5}]}', "tools[0].name: expected a string, got int"),
    ],
)  # fmt: skip
def test_item_members_are_checked(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(body)
    assert info.value.message == message
    assert info.value.param == message.split(":")[0]


def test_documented_items_pass() -> None:
    parse(
        b'{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},'
        b'{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},'
        b'{"type":"function_call_output","call_id":"c","output":"r"}],'
        b'"tools":[{"type":"function","name":"f","parameters":{}}]}'
    )
