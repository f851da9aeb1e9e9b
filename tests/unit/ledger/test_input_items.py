"""Input items of a stored response in OpenAI's shapes, whatever form the client sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay.errors import InvalidRequest
from relay.ledger.input_items import input_items, item_list

CONVERSATION: Any = [
    {"role": "developer", "content": "be brief"},
    {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "https://example.com/a.png"},
    ]},
    {"role": "assistant", "content": "earlier answer"},
    {"type": "reasoning", "id": "rs_1"},
    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "42"},
    # this response's own output, which is not input
    {"id": "msg_out", "type": "message", "role": "assistant", "status": "completed",
     "content": [{"type": "output_text", "text": "done", "annotations": [], "logprobs": []}]},
]  # fmt: skip
RESPONSE = json.dumps({"id": "resp_1", "output": [CONVERSATION[-1]]}).encode()


def items() -> list[dict[str, Any]]:
    return input_items("resp_1", json.dumps(CONVERSATION).encode(), RESPONSE)


def test_items_in_openai_shapes() -> None:
    developer, user, assistant, reasoning, call, output = items()
    assert developer["type"] == "message" and developer["status"] == "completed"
    assert developer["content"] == [{"type": "input_text", "text": "be brief"}]
    assert user["content"][1] == {
        "type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"
    }  # fmt: skip
    assert assistant["content"] == [
        {"type": "output_text", "text": "earlier answer", "annotations": [], "logprobs": []}
    ]
    assert reasoning == {"id": "rs_1", "type": "reasoning", "summary": []}
    assert call["id"].startswith("fc_") and call["status"] == "completed"
    assert output["id"].startswith("fco_") and output["output"] == "42"
    assert developer["id"].startswith("msg_")
    assert [i["id"] for i in items()] == [i["id"] for i in items()]  # stable across reads
    assert len({i["id"] for i in items()}) == 6


def page(query: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        item_list("resp_1", json.dumps(CONVERSATION).encode(), RESPONSE, query)
    )
    return result


def test_paging_newest_first_by_default() -> None:
    ids = [i["id"] for i in items()]
    first = page("limit=2")
    assert [i["id"] for i in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True and first["last_id"] == ids[-2]
    rest = page(f"limit=10&after={first['last_id']}")
    assert [i["id"] for i in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    assert [i["id"] for i in page("order=asc")["data"]] == ids
    assert page(f"order=asc&after={ids[-1]}") == {
        "object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit: expected an integer from 1 to 100, got '0'"),
        ("order=up", "order: expected asc or desc, got 'up'"),
        ("after=msg_x", "after: no item 'msg_x' in the input of response 'resp_1'"),
    ],
)
def test_bad_queries(query: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        page(query)
    assert info.value.message == message
