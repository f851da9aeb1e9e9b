"""Bad input gets a clear error in the envelope of the API called, and never hurts the worker."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.fakes.threaded import serve
from tests.integration.gateway import Gateway
from tests.integration.hostile import variants


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


# -- hostile input on every API route and kind of provider -------------------------------------

ANTHROPIC_ROUTES = ("/v1/messages", "/v1/messages/count_tokens")


async def _refuse(request: web.Request) -> web.Response:
    """A provider that refuses everything in its own envelope: any 5xx is then the gateway's."""
    await request.read()
    if request.path.startswith("/v1/messages"):
        error: dict[str, Any] = {"type": "invalid_request_error", "message": "refused"}
        return web.json_response({"type": "error", "error": error}, status=400)
    error = {"message": "refused", "type": "invalid_request_error", "param": None, "code": None}
    return web.json_response({"error": error}, status=400)


@pytest.fixture(scope="module")
def hostile_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", _refuse)
    with serve(app) as sink:
        refusing = {"kind": "openai", "base_url": sink + "/v1", "api_key": "sk-sink"}
        config = {
            "server": {"body_timeout_s": 1},
            "providers": {
                "openai": refusing,
                "vendor": {**refusing, "native_responses": False},
                "claude": {"kind": "anthropic", "base_url": sink + "/v1", "api_key": "sk-ant"},
                "echo": {"kind": "echo"},
            },
            "models": {
                "gpt": {"provider": "openai"},
                "vendor": {"provider": "vendor"},
                "claude": {"provider": "claude"},
                "echo": {"provider": "echo"},
            },
            "routing": {"passthrough_provider": "openai"},
        }
        gateway = Gateway(config, tmp_path_factory.mktemp("hostile"))
        yield gateway
        gateway.stop()


def answer(gw: Gateway, path: str, body: bytes, method: str = "POST") -> tuple[int, Any]:
    """Status and JSON of the answer; an error must be in the envelope of the API called."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    conn.request(method, path, body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    if response.status >= 400:
        if path in ANTHROPIC_ROUTES:
            assert payload["type"] == "error" and set(payload["error"]) == {"type", "message"}
        else:
            assert set(payload) == {"error"}
            assert set(payload["error"]) == {"message", "type", "param", "code"}
    return response.status, payload


def message_of(path: str, payload: Any) -> str:
    return str(payload["error"]["message"])


MESSAGES: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "r"},
    {"role": "user", "content": "go"},
]
BASES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "messages": MESSAGES,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "temperature": 0.5, "max_tokens": 20, "stop": ["x"], "n": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
        "user": "u", "metadata": {"tenant": "t"},
    },
    "/v1/completions": {"prompt": "hi there", "max_tokens": 5, "n": 1, "best_of": 1},
    "/v1/embeddings": {"input": ["a", "b"], "encoding_format": "float"},
    "/v1/messages": {
        "max_tokens": 20,
        "system": [{"type": "text", "text": "s"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"}, "temperature": 0.5, "stop_sequences": ["x"],
        "metadata": {"user_id": "u"},
    },
    "/v1/messages/count_tokens": {
        "messages": [{"role": "user", "content": "hi"}], "system": "s",
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    },
    "/v1/responses": {
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "r"},
        ],
        "instructions": "be brief",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "text": {"format": {"type": "text"}}, "max_output_tokens": 20, "store": False,
    },
}  # fmt: skip
MODELS = ("echo", "gpt", "vendor", "claude")


@pytest.mark.parametrize("path", list(BASES))
def test_seeded_hostile_variants_never_get_a_5xx(hostile_gw: Gateway, path: str) -> None:
    """Each valid body, changed in one place by a hostile value (numbers out of range, bytes
    that are not UTF-8 in keys and strings, unpaired surrogates, wrong types), on every kind of
    provider: an answer or a 4xx in the route's envelope, never a 5xx."""
    failures = []
    for n, model in enumerate(MODELS):
        seed = 1000 * list(BASES).index(path) + n
        base = {"model": model, **BASES[path]}
        for body in variants(base, seed, 30, frozenset({"model", "stream"})):
            status, payload = answer(hostile_gw, path, body)
            if status >= 500:
                failures.append((seed, status, body[:200], payload))
    assert not failures, failures[:5]


CHAT = b'{"model":"%s","messages":[{"role":"user","content":"hi"}]%s}'


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        # numbers out of range where the schema does not look, on the echo and Anthropic paths
        ("/v1/chat/completions", CHAT % (b"echo", b',"frequency_penalty":1e400'), "frequency_penalty", "frequency_penalty: number out of range"),
        ("/v1/completions", b'{"model":"echo","prompt":"a","logit_bias":{"5":-1e999}}', "logit_bias.5", "logit_bias.5: number out of range"),
        ("/v1/chat/completions", CHAT % (b"claude", b',"x":{"y":[1e400]}'), "x.y[0]", "x.y[0]: number out of range"),
        # invalid UTF-8 in object keys, on every route that decodes JSON
        ("/v1/chat/completions", CHAT % (b"echo", b',"\xff\xfe":1'), None, "request body: an object key is not valid UTF-8"),
        ("/v1/chat/completions", CHAT % (b"gpt", b',"\xff\xfe":1'), None, "request body: an object key is not valid UTF-8"),
        ("/v1/messages", b'{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi","k\xc3":1}]}', None, "messages[0]: an object key is not valid UTF-8"),
        ("/v1/responses", b'{"model":"vendor","input":"hi","metadata":{"\xed\xa0\x80":"v"}}', None, "metadata: an object key is not valid UTF-8"),
        ("/v1/responses", b'{"model":"gpt","input":"hi","\xff":1}', None, "request body: an object key is not valid UTF-8"),
        ("/v1/images/generations", b'{"model":"gpt","prompt":"a","\xff":1}', None, "request body: an object key is not valid UTF-8"),
        # pass-through bodies
        ("/v1/images/generations", b'{"model":1e400,"prompt":"a"}', None, "model: expected a string"),
        ("/v1/images/generations", b'{"model":"\\ud800","prompt":"a"}', None, "model: unpaired UTF-16 surrogate escape"),
        # shapes the translators and the echo provider read
        ("/v1/chat/completions", CHAT % (b"claude", b',"tools":"x"'), "tools", "tools: expected `array | null`, got `str`"),
        ("/v1/embeddings", b'{"model":"echo","input":["a",5]}', "input[1]", "input[1]: expected a string like input[0]"),
        ("/v1/responses", b'{"model":"echo","input":[{"role":{"a":1},"content":"hi"}]}', "input[0].role", "input[0].role: expected a string, got an object"),
        # parameters that multiply work
        ("/v1/chat/completions", CHAT % (b"echo", b',"n":200000'), "n", "n: expected 1 to 128, got 200000"),
        ("/v1/completions", b'{"model":"echo","prompt":"a","best_of":1000}', "best_of", "best_of: expected 0 to 20, got 1000"),
    ],
)  # fmt: skip
def test_hostile_classes_are_400s_naming_the_field(
    hostile_gw: Gateway, path: str, body: bytes, param: str | None, message: str
) -> None:
    status, payload = answer(hostile_gw, path, body)
    assert status == 400
    got = message_of(path, payload)
    assert got.startswith(message), got
    if param is not None and path not in ANTHROPIC_ROUTES:
        assert payload["error"]["param"] == param


def test_405_on_messages_uses_anthropics_envelope(hostile_gw: Gateway) -> None:
    status, payload = answer(hostile_gw, "/v1/messages", b"", method="GET")
    assert status == 405
    assert payload == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "GET is not allowed on /v1/messages; use POST",
        },
    }


# -- bodies that stop arriving ----------------------------------------------------------------


def raw_exchange(gw: Gateway, head: bytes, body: bytes) -> tuple[int, Any]:
    """Send a request whose body never completes; the status and JSON of the answer."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
        sock.sendall(head + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    head_in, _, payload = data.partition(b"\r\n\r\n")
    return int(head_in.split()[1]), json.loads(payload)


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def _head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: relay", *headers]
    return "".join(line + "\r\n" for line in lines).encode()


@pytest.mark.parametrize(
    ("path", "framing"),
    [
        ("/v1/chat/completions", "chunked"),
        ("/v1/chat/completions", "length"),
        ("/v1/messages", "chunked"),
        ("/v1/responses", "length"),
        ("/v1/images/generations", "chunked"),
        ("/admin/tenants", "length"),
    ],
)
def test_a_body_that_stops_arriving_is_a_408(hostile_gw: Gateway, path: str, framing: str) -> None:
    start = b'{"model":"echo","messages":[{"role":"user","content":"hi'
    if framing == "chunked":  # the chunk says 100 bytes and sends 20, then nothing
        head = _head(path, "content-type: application/json", "transfer-encoding: chunked")
        body = b"64\r\n" + start[:20]
    else:
        head = _head(path, "content-type: application/json", "content-length: 5000")
        body = start
    status, payload = raw_exchange(hostile_gw, head, body)
    assert status == 408
    if path in ANTHROPIC_ROUTES:
        assert payload["type"] == "error"
        message = payload["error"]["message"]
    else:
        assert payload["error"]["code"] == "request_timeout"
        message = payload["error"]["message"]
    assert message == "the request body did not arrive within 1s (server.body_timeout_s)"


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=XyZ", "application/octet-stream"]
)
def test_an_upload_that_stalls_is_a_408(hostile_gw: Gateway, content_type: str) -> None:
    head = _head("/v1/files", f"content-type: {content_type}", "transfer-encoding: chunked")
    part = b'--XyZ\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
    status, payload = raw_exchange(hostile_gw, head, b"%x\r\n%s\r\n" % (len(part), part))
    assert status == 408
    assert payload["error"]["code"] == "request_timeout"
