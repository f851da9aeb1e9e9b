"""Parameter rules of the OpenAI-shaped vendors, and the Bedrock request translation."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from relay.config.model import ProviderConfig
from relay.errors import InvalidRequest
from relay.exchange import Attempt, Deployment, Endpoint, Exchange
from relay.providers.azure import AzureOpenAI
from relay.providers.bedrock_request import converse_body
from relay.providers.vendors import Mistral, Ollama


def exchange(
    body: dict[str, Any], *, drop: bool = False, endpoint: Endpoint = Endpoint.CHAT
) -> tuple[Exchange, Attempt]:
    raw = msgspec.json.encode(body)
    ex = Exchange("req_1", endpoint, raw, {}, model="pub", stream=bool(body.get("stream")))
    deployment = Deployment("p", "up-model", "pub", drop_unsupported_params=drop)
    ex.deployment = deployment
    return ex, Attempt(deployment)


def test_mistral_renames_strips_and_refuses() -> None:
    mistral = Mistral("m", ProviderConfig(kind="mistral", api_key="k"))
    assert mistral.base_url == "https://api.mistral.ai/v1"
    ex, attempt = exchange(
        {"model": "pub", "messages": [], "seed": 1, "stream": True,
         "stream_options": {"include_usage": True}, "logit_bias": None}
    )  # fmt: skip
    body = msgspec.json.decode(mistral.body_for(ex, attempt))
    assert body == {"model": "up-model", "messages": [], "random_seed": 1, "stream": True}
    ex, attempt = exchange({"model": "pub", "messages": [], "logprobs": True})
    with pytest.raises(InvalidRequest) as err:
        mistral.body_for(ex, attempt)
    assert (
        err.value.param == "logprobs" and "models.pub.drop_unsupported_params" in err.value.message
    )


def test_values_keep_the_clients_bytes_when_rules_apply() -> None:
    ollama = Ollama("o", ProviderConfig(kind="ollama"))
    assert ollama.base_url == "http://localhost:11434/v1"
    ex, attempt = exchange({"model": "pub", "messages": [], "n": 2}, drop=True)
    ex.body = b'{"model":"pub","n":2,"messages":[{"role":"user","content":"caf\\u00e9 1.50"}]}'
    assert ollama.body_for(ex, attempt) == (
        b'{"model":"up-model","messages":[{"role":"user","content":"caf\\u00e9 1.50"}]}'
    )


def test_azure_url_and_headers() -> None:
    config = ProviderConfig(
        kind="azure", base_url="https://r.openai.azure.com/", api_key="k1", api_version="2024-10-21"
    )
    azure = AzureOpenAI("a", config)
    ex, attempt = exchange({"model": "pub", "messages": []}, endpoint=Endpoint.EMBEDDINGS)
    assert azure.url_for(ex, attempt) == (
        "https://r.openai.azure.com/openai/deployments/up-model/embeddings?api-version=2024-10-21"
    )
    assert azure.headers_for(ex, attempt)["api-key"] == "k1"


def convert(request: dict[str, Any], drop: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.json.decode(
        converse_body(request, provider="b", model="pub", drop_unsupported=drop)
    )
    return out


def test_bedrock_merges_turns_and_maps_images() -> None:
    png = "iVBORw0KGgo="
    body = convert(
        {
            "model": "pub",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "rules"}]},
                {"role": "user", "content": "a"},
                {"role": "user", "content": [
                    {"type": "text", "text": "b"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ]},
            ],
        }
    )  # fmt: skip
    assert body == {
        "system": [{"text": "rules"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "a"},
                    {"text": "b"},
                    {"image": {"format": "png", "source": {"bytes": png}}},
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"n": 2}, "n"), ({"seed": 1}, "seed"), ({"tool_choice": "none", "tools": [
        {"type": "function", "function": {"name": "f"}}]}, "tool_choice")],
)  # fmt: skip
def test_bedrock_refuses_what_converse_cannot_do(extra: dict[str, Any], param: str) -> None:
    request = {"model": "pub", "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(InvalidRequest) as err:
        convert(request)
    assert err.value.param == param
    assert convert(request, drop=True)["messages"][0]["content"] == [{"text": "x"}]


def test_bedrock_refuses_image_links_and_bad_tool_arguments() -> None:
    link = {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}
    with pytest.raises(InvalidRequest, match=r"messages\[0\]\.content\[0\]\.image_url\.url"):
        convert({"messages": [{"role": "user", "content": [link]}]})
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(InvalidRequest, match="arguments: expected a JSON object"):
        convert({"messages": [{"role": "user", "content": "x"},
                              {"role": "assistant", "tool_calls": [call]}]})  # fmt: skip


def test_safety_identifier_is_attribution() -> None:
    """OpenAI's newer name for who is calling: recorded, and dropped where there is no field."""
    mistral = Mistral("m", ProviderConfig(kind="mistral", api_key="k"))
    ex, attempt = exchange({"model": "pub", "messages": [], "safety_identifier": "u-1"})
    assert msgspec.json.decode(mistral.body_for(ex, attempt)) == {
        "model": "up-model", "messages": []
    }  # fmt: skip
    body = convert({"model": "pub", "messages": [{"role": "user", "content": "x"}],
                    "safety_identifier": "u-1"})  # fmt: skip
    assert "safety_identifier" not in body
