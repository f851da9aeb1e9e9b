"""What of a pass-through request may reach a provider: its route under ``/v1`` (normalised,
never able to leave the provider's API root) and a few of its headers.

A route is a sequence of non-empty segments, each percent-decoded once and then made only of
``A-Z a-z 0-9 . _ ~ : + = , @ -`` (no ``.``/``..`` segment, no slash or backslash, no ``%``
left after decoding: ``%2e%2e``, ``%2f`` and double encodings are refused). The URL is the
configured provider's API root followed by this route, so a request can never choose where the
gateway connects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from relay.errors import InvalidRequest, NotFound

_SEGMENT = re.compile(r"^[A-Za-z0-9._~:+=,@-]{1,256}$")
_QUERY = re.compile(r"^[A-Za-z0-9._~:+=,@&%/\[\]-]{0,2048}$")
MAX_SEGMENTS = 16
# Client headers a provider may see on a pass-through (besides the gateway's own credential).
REQUEST_HEADERS = ("content-type", "accept", "openai-beta", "idempotency-key")
# Provider headers a client may see, besides openai-* and the request id (see egress.headers).
RESPONSE_HEADERS = frozenset(
    {"content-type", "content-disposition", "retry-after", "cache-control", "last-modified", "etag"}
)


def route(path: str, query: str) -> str:
    """``/v1/files/file-1/content`` -> ``/files/file-1/content`` (with ``?query``), or a 400."""
    if not path.startswith("/v1/"):
        raise NotFound(f"no route for {path[:80]}")
    segments = path[4:].split("/")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidRequest(f"path: more than {MAX_SEGMENTS} segments")
    clean = []
    for segment in segments:
        decoded = unquote(segment)
        if not _SEGMENT.match(decoded) or decoded.strip(".") == "":
            raise InvalidRequest(
                f"path: segment {segment[:40]!r} is not allowed (empty, '.', '..', or characters "
                "outside A-Z a-z 0-9 . _ ~ : + = , @ -)"
            )
        clean.append(decoded)
    out = "/" + "/".join(clean)
    if query:
        if not _QUERY.match(query):
            raise InvalidRequest("query string: characters that are not allowed")
        out += "?" + query
    return out


def request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client headers that go upstream (never its credential, cookies or hop-by-hop)."""
    out: dict[str, str] = {}
    for name in REQUEST_HEADERS:
        value = headers.get(name)
        if value:
            out[name] = value
    return out


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The provider headers that go to the client (content description and retry hints;
    the gateway's egress adds openai-* and the provider's request id)."""
    return [(k.lower(), v) for k, v in headers if k.lower() in RESPONSE_HEADERS]
