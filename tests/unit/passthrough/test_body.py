"""A pass-through JSON body's ``model``: any body, however hostile, is a 400 or a model name."""

from __future__ import annotations

import pytest

from relay.errors import InvalidRequest
from relay.passthrough.body import json_model


def test_model_and_no_model() -> None:
    assert json_model(b'{"prompt":"x","model":"gpt-image-1"}') == "gpt-image-1"
    assert json_model(b'{"prompt":"x"}') is None
    assert json_model(b'{"model":null}') is None
    assert json_model('{"model":"m","prompt":"café"}'.encode()) == "m"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"model":1e400,"prompt":"x"}', "model: expected a string"),
        (b'{"model":5}', "model: expected a string"),
        (b'{"model":{"a":1}}', "model: expected a string"),
        (b'{"model":"\\ud800","prompt":"x"}', "model: unpaired UTF-16 surrogate escape"),
        (b'{"model":"m","\xff":1}', "request body: an object key is not valid UTF-8 (invalid byte 0xff at byte 14)"),
        (b'{"model":"m","x":{"k":"\xc3"}}', "x.k: not valid UTF-8 (invalid byte 0xc3 at byte 23)"),
    ],
)  # fmt: skip
def test_hostile_bodies_are_400s_naming_the_field(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        json_model(body)
    assert info.value.status == 400
    assert info.value.message == message


def test_invalid_json_says_where() -> None:
    with pytest.raises(InvalidRequest) as info:
        json_model(b'{"model":"m",}')
    assert info.value.message.startswith("invalid JSON in request body: ")
    assert "byte offset" in info.value.message
