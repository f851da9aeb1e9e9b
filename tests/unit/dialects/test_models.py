"""The models list in OpenAI's and Anthropic's shapes, and Anthropic's paging."""

from __future__ import annotations

import json

import pytest

from relay.dialects.models import ModelCatalog
from relay.errors import InvalidRequest, ModelNotFound

CATALOG = ModelCatalog({name: "relay" for name in "abcde"}, created=1_700_000_000)


def page(query: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(CATALOG.anthropic_list(query))
    return result


def ids(query: str) -> list[str]:
    data = page(query)["data"]
    assert isinstance(data, list)
    return [m["id"] for m in data]


def test_openai_shapes() -> None:
    assert json.loads(CATALOG.openai_list)["data"][0] == {
        "id": "a", "object": "model", "created": 1_700_000_000, "owned_by": "relay"
    }  # fmt: skip
    assert json.loads(CATALOG.openai_model("e"))["id"] == "e"


def test_anthropic_model_and_first_page() -> None:
    assert json.loads(CATALOG.anthropic_model("b")) == {
        "type": "model", "id": "b", "display_name": "b", "created_at": "2023-11-14T22:13:20Z",
        "lifecycle": "active",
    }  # fmt: skip
    assert (
        page("")
        == page("limit=20")
        == {
            "data": [json.loads(CATALOG.anthropic_model(n)) for n in "abcde"],
            "has_more": False,
            "first_id": "a",
            "last_id": "e",
        }
    )


def test_anthropic_paging_both_ways() -> None:
    assert ids("limit=2") == ["a", "b"] and page("limit=2")["has_more"] is True
    assert ids("limit=2&after_id=b") == ["c", "d"]
    assert ids("limit=2&after_id=d") == ["e"] and page("limit=2&after_id=d")["has_more"] is False
    assert ids("limit=2&before_id=e") == ["c", "d"]
    assert page("limit=2&before_id=e")["has_more"] is True
    assert ids("limit=5&before_id=c") == ["a", "b"]
    assert page("limit=5&before_id=c")["has_more"] is False
    empty = page("before_id=a")
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit: expected an integer from 1 to 1000, got '0'"),
        ("limit=x", "limit: expected an integer from 1 to 1000, got 'x'"),
        ("limit=1001", "limit: expected an integer from 1 to 1000, got '1001'"),
        ("after_id=zz", "after_id: model 'zz' is not configured on this gateway"),
        ("after_id=a&before_id=c", "after_id, before_id: give one of them, not both"),
    ],
)
def test_bad_queries_are_400s(query: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        CATALOG.anthropic_list(query)
    assert info.value.message == message


def test_unknown_models_are_404s() -> None:
    with pytest.raises(ModelNotFound):
        CATALOG.anthropic_model("nope")
    with pytest.raises(ModelNotFound):
        CATALOG.openai_model("nope")
