"""HTTP pieces of the dashboard: the request it sees, the answer it gives, cookies and the
security headers every page carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

# No inline script or style anywhere: scripts and the stylesheet come from /ui/static only.
# SVG charts use presentation attributes, which CSP does not treat as inline styles.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
)
HTML = "text/html; charset=utf-8"
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")


@dataclass(frozen=True, slots=True)
class UiRequest:
    """What a page handler needs of a request."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = b""
    # The scheme the server saw ("http" or "https").
    scheme: str = "http"

    @property
    def params(self) -> dict[str, str]:
        """The query's parameters (the last of a repeated one; blank ones dropped)."""
        return _pairs(self.query)

    def form(self) -> dict[str, str]:
        """A posted ``application/x-www-form-urlencoded`` form."""
        return _pairs(self.body.decode("utf-8", "replace"))

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies by name."""
        found: dict[str, str] = {}
        for part in self.headers.get("cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name:
                found.setdefault(name, value)
        return found

    @property
    def secure_cookies(self) -> bool:
        """Cookies get ``Secure`` unless this is plain HTTP to a loopback host (a laptop's
        own gateway); behind a TLS proxy, ``x-forwarded-proto: https`` counts as HTTPS."""
        if self.scheme == "https" or self.headers.get("x-forwarded-proto") == "https":
            return True
        host = self.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name not in _LOOPBACK


def _pairs(text: str) -> dict[str, str]:
    return {
        k: v[-1].strip()
        for k, v in parse_qs(text, keep_blank_values=False).items()
        if "\x00" not in k and "\x00" not in v[-1]
    }


@dataclass(slots=True)
class UiResponse:
    """Status, headers (the security headers are added on the way out) and body."""

    status: int
    body: bytes = b""
    content_type: str = HTML
    headers: list[tuple[str, str]] = field(default_factory=list)

    def all_headers(self) -> list[tuple[str, str]]:
        """Every header to send."""
        return [("content-type", self.content_type), *SECURITY_HEADERS, *self.headers]


def redirect(location: str, *headers: tuple[str, str]) -> UiResponse:
    """A 303 to ``location`` (after a form: the browser follows with GET)."""
    return UiResponse(
        303, b"", HTML, [("location", location), ("cache-control", "no-store"), *headers]
    )


def set_cookie(
    name: str,
    value: str,
    *,
    secure: bool,
    max_age: int | None = None,
    path: str = "/ui",
    same_site: str = "Lax",
) -> tuple[str, str]:
    """A ``set-cookie`` header pair: always HttpOnly; ``max_age=0`` deletes the cookie."""
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", f"SameSite={same_site}"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return ("set-cookie", "; ".join(parts))


def safe_next(path: str | None, default: str = "/ui/") -> str:
    """Where to go after sign-in: ``path`` when it is a page of the dashboard, else
    ``default``. A redirect goes there, so it must never lead to another site
    (``//evil.example``, ``/ui\\..``, a scheme) nor carry a control character."""
    if (
        path
        and path.startswith("/ui")
        and (len(path) == 3 or path[3] in "/?#")
        and "\\" not in path
        and not urlsplit(path).netloc
        and all(ch.isprintable() for ch in path)
    ):
        return path
    return default
