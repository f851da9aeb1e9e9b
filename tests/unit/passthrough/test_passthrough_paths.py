"""Pass-through routes, headers and multipart model peeking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from relay.errors import BodyTooLarge, InvalidRequest, NotFound
from relay.passthrough.body import multipart_with_model, peek_multipart
from relay.passthrough.paths import request_headers, response_headers, route


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/v1/files", "", "/files"),
        ("/v1/files/file-abc/content", "", "/files/file-abc/content"),
        ("/v1/files", "limit=2&after=file-1", "/files?limit=2&after=file-1"),
        ("/v1/models/ft:gpt-4o:org::abc", "", "/models/ft:gpt-4o:org::abc"),
        ("/v1/vector_stores/vs_1/files", "", "/vector_stores/vs_1/files"),
    ],
)
def test_routes_kept(path: str, query: str, expected: str) -> None:
    assert route(path, query) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/v1/../admin",
        "/v1/files/..",
        "/v1/files/.",
        "/v1/files/...",
        "/v1//evil.example/x",
        "/v1/files/",
        "/v1/files/%2e%2e/x",  # granian decodes once; this is the second decoding
        "/v1/files/..%2fx",
        "/v1/files/%252e%252e",
        "/v1/files\\..\\admin",
        "/v1/http://evil/x",
        "/v1/files/a b",
        "/v1/files/\x00",
        "/v1/" + "/".join(["a"] * 17),
    ],
)
def test_routes_refused(path: str) -> None:
    with pytest.raises(InvalidRequest):
        route(path, "")


def test_outside_v1_and_bad_queries() -> None:
    with pytest.raises(NotFound):
        route("/admin/tenants", "")
    with pytest.raises(InvalidRequest):
        route("/v1/files", "a=b c")
    with pytest.raises(InvalidRequest):
        route("/v1/files", "a=#b")


def test_headers_are_allow_listed() -> None:
    sent = request_headers(
        {
            "content-type": "multipart/form-data; boundary=x",
            "authorization": "Bearer caller",
            "cookie": "c=1",
            "connection": "keep-alive",
            "openai-beta": "assistants=v2",
        }
    )
    assert sent == {
        "content-type": "multipart/form-data; boundary=x",
        "openai-beta": "assistants=v2",
    }
    back = response_headers(
        [
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
            ("Set-Cookie", "x"),
        ]
    )
    assert back == [("content-type", "application/json")]


FORM = (
    b'--XB\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
    b'--XB\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
    b"Content-Type: audio/wav\r\n\r\n" + b"\x00" * 100 + b"\r\n--XB--\r\n"
)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_multipart_model_found_at_any_split(size: int) -> None:
    async def run() -> tuple[bytes, str | None, bytes]:
        reader = pieces(FORM, size).__aiter__()
        read, model = await peek_multipart(reader, "multipart/form-data; boundary=XB", 10**6, 30.0)
        rest = b"".join([part async for part in reader])
        return b"".join(read), model, rest

    read, model, rest = asyncio.run(run())
    assert model == "whisper-1"
    assert read + rest == FORM  # nothing lost, nothing read twice


def test_multipart_without_model_stops_at_the_file() -> None:
    form = FORM.replace(b'name="model"', b'name="purpose"')
    reader = pieces(form, 16).__aiter__()
    read, model = asyncio.run(
        peek_multipart(reader, 'multipart/form-data; boundary="XB"', 10**6, 30.0)
    )
    assert model is None
    assert len(b"".join(read)) < len(form)


def test_multipart_model_renamed_and_limits() -> None:
    renamed = b"".join(multipart_with_model([FORM[:60], FORM[60:]], "whisper-large"))
    assert b"\r\n\r\nwhisper-large\r\n--XB" in renamed
    assert renamed.replace(b"whisper-large", b"whisper-1") == FORM
    with pytest.raises(BodyTooLarge):
        asyncio.run(
            peek_multipart(
                pieces(FORM, 8).__aiter__(), "multipart/form-data; boundary=XB", 20, 30.0
            )
        )
    with pytest.raises(InvalidRequest):
        asyncio.run(peek_multipart(pieces(FORM, 8).__aiter__(), "multipart/form-data", 10**6, 30.0))
