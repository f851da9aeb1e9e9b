"""Bad input gets a clear error in OpenAI's envelope, and never hurts the worker."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket

import openai
import pytest

from tests.integration.gateway import Gateway


def post(
    gateway: Gateway,
    body: bytes,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, object], dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    conn.request(
        method, path, body=body, headers={"content-type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload), {k.lower(): v for k, v in response.getheaders()}


def error_of(gateway: Gateway, body: bytes, **kw: object) -> tuple[int, dict[str, object]]:
    status, payload, headers = post(gateway, body, **kw)  # type: ignore[arg-type]
    assert set(payload) == {"error"}
    error = payload["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    return status, error


def test_malformed_json(echo_gateway: Gateway) -> None:
    status, error = error_of(echo_gateway, b'{"model": "echo", "messages": [')
    assert status == 400 and error["type"] == "invalid_request_error"
    assert str(error["message"]).startswith("invalid JSON in request body")


def test_wrong_type_says_which_field(echo_gateway: Gateway) -> None:
    body = json.dumps(
        {
            "model": "echo",
            "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": ["x", 1]}],
        }
    )
    status, error = error_of(echo_gateway, body.encode())
    assert status == 400
    assert error["param"] == "messages[1].content[0]"


def test_non_utf8(echo_gateway: Gateway) -> None:
    status, error = error_of(
        echo_gateway, b'{"model":"echo","messages":[{"role":"user","content":"\xc3\x28"}]}'
    )
    assert status == 400 and "not valid UTF-8" in str(error["message"])


def test_unknown_model_is_404_with_sdk(echo_gateway: Gateway) -> None:
    sdk = openai.OpenAI(base_url=echo_gateway.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        sdk.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "a"}])
    assert info.value.code == "model_not_found"
    assert "gpt-9" in info.value.message


def test_schema_error_with_sdk(echo_gateway: Gateway) -> None:
    sdk = openai.OpenAI(base_url=echo_gateway.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": 5}])  # type: ignore[misc,list-item]
    assert "messages[0].content" in info.value.message


def test_vendor_specific_roles_pass_through(echo_gateway: Gateway) -> None:
    sdk = openai.OpenAI(base_url=echo_gateway.base_url, api_key="x", max_retries=0)
    reply = sdk.chat.completions.create(
        model="echo",
        messages=[{"role": "ipython", "content": "a"}, {"role": "user", "content": "hi"}],  # type: ignore[misc,list-item]
    )
    assert reply.choices[0].message.content == "You said: hi"


def test_body_over_limit_is_413(echo_gateway: Gateway) -> None:
    big = (
        b'{"model":"echo","messages":[{"role":"user","content":"'
        + b"a" * (5 * 1024 * 1024)
        + b'"}]}'
    )
    status, error = error_of(echo_gateway, big)
    assert status == 413 and error["code"] == "request_too_large"


def test_chunked_body_over_limit_is_413(echo_gateway: Gateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", echo_gateway.port, timeout=30)
    piece = b"a" * 65536

    def body():  # type: ignore[no-untyped-def]
        yield b'{"model":"echo","messages":[{"role":"user","content":"'
        for _ in range(100):
            yield piece

    conn.request(
        "POST",
        "/v1/chat/completions",
        body=body(),
        encode_chunked=True,
        headers={"content-type": "application/json", "transfer-encoding": "chunked"},
    )
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "request_too_large"


def test_wrong_method_and_unknown_route(echo_gateway: Gateway) -> None:
    status, error = error_of(echo_gateway, b"", method="GET")
    assert status == 405 and "use POST" in str(error["message"])
    status, error = error_of(echo_gateway, b"{}", path="/v1/nothing")
    assert status == 404


def test_empty_and_non_object_bodies(echo_gateway: Gateway) -> None:
    assert error_of(echo_gateway, b"")[0] == 400
    assert error_of(echo_gateway, b"null")[0] == 400
    assert error_of(echo_gateway, b'"text"')[0] == 400
    assert error_of(echo_gateway, b'{"model": 5, "messages": []}')[1]["param"] == "model"


def test_garbage_on_the_socket_does_not_hurt_the_worker(echo_gateway: Gateway) -> None:
    for junk in (
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", echo_gateway.port), timeout=5) as sock:
            sock.sendall(junk)
            with contextlib.suppress(OSError):
                sock.recv(1024)
    status, _, _ = post(
        echo_gateway, b'{"model":"echo","messages":[{"role":"user","content":"ok"}]}'
    )
    assert status == 200


def test_deeply_nested_json_is_refused_not_crashing(echo_gateway: Gateway) -> None:
    body = (
        b'{"model":"echo","messages":[{"role":"user","content":"x"}],"extra":'
        + b"[" * 100000
        + b"]" * 100000
        + b"}"
    )
    status, _, _ = post(echo_gateway, body)
    assert status == 400
    status, _, _ = post(
        echo_gateway, b'{"model":"echo","messages":[{"role":"user","content":"ok"}]}'
    )
    assert status == 200
