"""The OpenAI-compatible adapter: which bytes and headers go upstream."""

from __future__ import annotations

import msgspec

from relay.config.model import ProviderConfig
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal
from relay.providers.openai_compat import OpenAICompatible
from relay.providers.openai_wire import upstream_body

BODY = b'{"model":"public","messages":[{"role":"user","content":"hi"}],"seed":1}'


def adapter(**config: object) -> OpenAICompatible:
    settings = ProviderConfig(kind="openai", base_url="http://up/v1/", api_key="sk-conf", **config)  # type: ignore[arg-type]
    return OpenAICompatible("up", settings)


def exchange(
    *, upstream_model: str = "public", stream: bool = False, wants_usage: bool = False
) -> Exchange:
    ex = Exchange(
        "req_9",
        Endpoint.CHAT,
        BODY,
        {},
        model="public",
        stream=stream,
        client_wants_usage=wants_usage,
    )
    ex.deployment = Deployment("up", upstream_model, "public")
    return ex


def body_for(ex: Exchange) -> bytes:
    assert ex.deployment is not None
    return upstream_body(ex, Attempt(ex.deployment))


def headers_for(a: OpenAICompatible, ex: Exchange) -> dict[str, str]:
    assert ex.deployment is not None
    return a.headers_for(ex, Attempt(ex.deployment))


def test_body_is_the_clients_bytes_when_nothing_changes() -> None:
    assert body_for(exchange()) is BODY


def test_model_is_renamed_and_other_fields_kept() -> None:
    body = msgspec.json.decode(body_for(exchange(upstream_model="gpt-4o-2024")))
    assert body == {**msgspec.json.decode(BODY), "model": "gpt-4o-2024"}


def test_stream_forces_usage_keeping_other_options() -> None:
    ex = exchange(stream=True)
    ex.body = BODY[:-1] + b',"stream":true,"stream_options":{"future":1}}'
    body = msgspec.json.decode(body_for(ex))
    assert body["stream_options"] == {"future": 1, "include_usage": True}


def test_stream_where_client_asked_usage_is_untouched() -> None:
    ex = exchange(stream=True, wants_usage=True)
    assert body_for(ex) is BODY


def test_headers_use_the_configured_key_and_request_id() -> None:
    headers = headers_for(adapter(headers={"OpenAI-Organization": "org-1"}), exchange())
    assert headers["authorization"] == "Bearer sk-conf"
    assert headers["x-request-id"] == "req_9"
    assert headers["OpenAI-Organization"] == "org-1"


def test_forward_client_auth_prefers_the_callers_key() -> None:
    ex = exchange()
    ex.principal = Principal(client_authorization="Bearer client-own")
    assert (
        headers_for(adapter(forward_client_auth=True), ex)["authorization"] == "Bearer client-own"
    )
    # without the option the caller's key is never forwarded
    assert headers_for(adapter(), ex)["authorization"] == "Bearer sk-conf"


def test_edits_are_spliced_keeping_the_rest_byte_for_byte() -> None:
    ex = exchange(upstream_model="gpt-4o-2024", stream=True)
    ex.body = b'{ "model" : "public",\n "messages": [{"role":"user","content":"h\\u00e9"}], "stream": true}'
    out = body_for(ex)
    assert b'"messages": [{"role":"user","content":"h\\u00e9"}]' in out
    decoded = msgspec.json.decode(out)
    assert decoded["model"] == "gpt-4o-2024"
    assert decoded["stream_options"] == {"include_usage": True}


def test_urls_join_base_and_endpoint() -> None:
    a = adapter()
    assert a._urls[Endpoint.CHAT] == "http://up/v1/chat/completions"
    assert a._urls[Endpoint.EMBEDDINGS] == "http://up/v1/embeddings"
