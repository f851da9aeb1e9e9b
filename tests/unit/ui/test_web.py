"""The dashboard's HTTP pieces (relay.ui.web) and its forms (relay.ui.forms)."""

from __future__ import annotations

import msgspec
import pytest

from relay.errors import InvalidRequest
from relay.ui import forms
from relay.ui.web import UiRequest, safe_next, set_cookie


def request(host: str, scheme: str = "http", **headers: str) -> UiRequest:
    return UiRequest("GET", "/ui/", "", {"host": host, **headers}, b"", scheme)


@pytest.mark.parametrize(
    ("host", "scheme", "forwarded", "secure"),
    [
        ("127.0.0.1:8080", "http", None, False),
        ("localhost:8080", "http", None, False),
        ("[::1]:8080", "http", None, False),
        ("localhost", "http", None, False),
        ("relay.example.com", "http", None, True),
        ("10.0.0.5:8080", "http", None, True),
        ("localhost:8080", "https", None, True),
        ("127.0.0.1:8080", "http", "https", True),
    ],
)
def test_secure_cookies_unless_plain_http_to_loopback(
    host: str, scheme: str, forwarded: str | None, secure: bool
) -> None:
    extra = {"x-forwarded-proto": forwarded} if forwarded else {}
    assert request(host, scheme, **extra).secure_cookies is secure


def test_cookies_and_forms() -> None:
    req = UiRequest(
        "POST", "/ui/keys", "a=1&a=2&blank=", {"cookie": "x=1; relay_session=abc.def; =bad; y"},
        b"name=k%C3%A9y&csrf=t&nul=%00",
    )  # fmt: skip
    assert req.params == {"a": "2"}
    assert req.cookies == {"x": "1", "relay_session": "abc.def"}
    assert req.form() == {"name": "k\u00e9y", "csrf": "t"}


def test_set_cookie() -> None:
    name, value = set_cookie("s", "v", secure=True, max_age=10)
    assert name == "set-cookie"
    assert value == "s=v; Path=/ui; HttpOnly; SameSite=Lax; Secure; Max-Age=10"
    assert "Secure" not in set_cookie("s", "", secure=False, max_age=0)[1]


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/ui/keys?prefix=x", "/ui/keys?prefix=x"),
        (None, "/ui/"),
        ("https://evil.example/ui", "/ui/"),
        ("//evil.example/ui", "/ui/"),
        ("/\\evil.example", "/ui/"),
        ("/admin/keys", "/ui/"),
        ("/uix", "/ui/"),
        ("/ui/\r\nset-cookie: s=1", "/ui/"),
    ],
)
def test_safe_next(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_form_bodies() -> None:
    body = forms.body(
        {"name": "k", "rate_limit_rpm": "60", "budget_usd": "2.5", "allowed_models": "a, b\nc",
         "expires_at": "2027-01-01", "budget_period": "day", "unknown": "x", "tenant_id": ""},
        forms.KEY_FIELDS,
    )  # fmt: skip
    assert msgspec.json.decode(body) == {
        "name": "k", "rate_limit_rpm": 60, "budget_usd": 2.5, "allowed_models": ["a", "b", "c"],
        "expires_at": "2027-01-01T00:00:00+00:00", "budget_period": "day",
    }  # fmt: skip
    with pytest.raises(InvalidRequest, match="rate_limit_rpm: expected an integer"):
        forms.body({"rate_limit_rpm": "lots"}, forms.KEY_FIELDS)
