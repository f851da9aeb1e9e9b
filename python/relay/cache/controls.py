"""The request's own say: ``Cache-Control`` (``no-cache``: do not read, ``no-store``: do not
write, ``max-age=N``: accept an entry no older than N seconds) and ``x-relay-cache-ttl: N``
(keep the entry this request writes N seconds)."""

from __future__ import annotations

from collections.abc import Mapping

from relay.ingress.headers import positive_seconds

TTL_HEADER = "x-relay-cache-ttl"


def controls(headers: Mapping[str, str], ttl_s: float) -> tuple[bool, bool, float | None, float]:
    """(read, store, max-age or None, ttl) for a request whose model keeps entries ``ttl_s``."""
    read, store, max_age = True, True, None
    directives = headers.get("cache-control")
    if directives:
        for part in directives.lower().split(","):
            name, _, value = part.strip().partition("=")
            if name == "no-cache":
                read = False
            elif name == "no-store":
                store = False
            elif name == "max-age":
                # An unreadable max-age accepts nothing stored (HTTP caches treat it as stale).
                try:
                    max_age = max(float(int(value.strip().strip('"'))), 0.0)
                except ValueError:
                    max_age = 0.0
    given = headers.get(TTL_HEADER)
    if given is not None:
        ttl_s = positive_seconds(TTL_HEADER, given, param=TTL_HEADER)
    return read, store, max_age, ttl_s
