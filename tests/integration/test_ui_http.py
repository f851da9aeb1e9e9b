"""The dashboard over plain HTTP against a real ``relay serve``: security headers on every
answer, the session cookie's attributes, CSRF refusals, sign-in refusals, the admin API's
access rules (one code path), and no secret rendered after its creation."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import MASTER, call, keys_config

pytestmark = pytest.mark.integration

PAGES = ("/ui/", "/ui/usage", "/ui/requests", "/ui/keys", "/ui/tenants", "/ui/users", "/ui/audit")


@pytest.fixture(scope="module")
def gateway(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("ui")
    gw = Gateway(keys_config(fake_upstream, f"sqlite:///{tmp / 'relay.db'}"), tmp)
    try:
        yield gw
    finally:
        gw.stop()


class Browser:
    """Just enough of a browser: a cookie jar, forms' CSRF tokens, no redirects followed."""

    def __init__(self, gateway: Gateway, host: str | None = None) -> None:
        self.gateway, self.host = gateway, host
        self.cookies: dict[str, str] = {}

    def send(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, list[str]], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=20)
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if self.host:
            headers["host"] = self.host
        body = None
        if form is not None:
            body = urlencode(form)
            headers["content-type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        found: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            found.setdefault(name.lower(), []).append(value)
        for cookie in found.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        conn.close()
        return response.status, found, text

    def csrf(self, path: str) -> str:
        status, _, text = self.send("GET", path)
        assert status == 200, text
        match = re.search(r'name="csrf" value="([^"]+)"', text)
        assert match, text
        return match.group(1)

    def sign_in(self, key: str) -> tuple[int, str]:
        token = self.csrf("/ui/login")
        status, headers, text = self.send("POST", "/ui/login", {"csrf": token, "key": key})
        return status, (headers.get("location") or [""])[0] + text


def signed_in(gateway: Gateway, key: str = MASTER) -> Browser:
    browser = Browser(gateway)
    status, where = browser.sign_in(key)
    assert status == 303 and where.startswith("/ui/"), where
    return browser


def test_security_headers_on_every_answer(gateway: Gateway) -> None:
    browser = signed_in(gateway)
    paths = [*PAGES, "/ui/login", "/ui/static/relay.css", "/ui/static/relay.js", "/ui/nowhere"]
    for path in paths:
        status, headers, _ = (Browser(gateway) if path == "/ui/login" else browser).send("GET", path)
        assert status in (200, 404), path
        csp = headers["content-security-policy"][0]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == ["nosniff"]
        assert headers["referrer-policy"] == ["same-origin"]
    # No inline script or style on any page: the CSP would block it.
    for path in PAGES:
        _, _, text = browser.send("GET", path)
        assert "<script>" not in text and "<style" not in text and " style=" not in text
        assert "onclick" not in text


def test_session_cookie_attributes_and_logout(gateway: Gateway) -> None:
    browser = Browser(gateway)
    token = browser.csrf("/ui/login")
    _, headers, _ = browser.send("POST", "/ui/login", {"csrf": token, "key": MASTER})
    (cookie,) = [c for c in headers["set-cookie"] if c.startswith("relay_session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain HTTP to 127.0.0.1
    # Any other host over plain HTTP: Secure (the browser then sends it over HTTPS only).
    remote = Browser(gateway, host="relay.example.com")
    token = remote.csrf("/ui/login")
    _, headers, _ = remote.send("POST", "/ui/login", {"csrf": token, "key": MASTER})
    assert any("Secure" in c for c in headers["set-cookie"] if c.startswith("relay_session="))

    status, _, _ = browser.send("GET", "/ui/keys")
    assert status == 200
    token = browser.csrf("/ui/keys")
    status, headers, _ = browser.send("POST", "/ui/logout", {"csrf": token})
    assert status == 303 and headers["location"] == ["/ui/login"]
    status, headers, _ = browser.send("GET", "/ui/keys")
    assert status == 303 and headers["location"][0].startswith("/ui/login?next=/ui/keys")


def test_forged_or_missing_session_refused(gateway: Gateway) -> None:
    browser = signed_in(gateway)
    forged = browser.cookies["relay_session"].rsplit(".", 1)[0] + ".AAAA"
    browser.cookies["relay_session"] = forged
    status, headers, _ = browser.send("GET", "/ui/tenants")
    assert status == 303 and headers["location"][0].startswith("/ui/login")


def test_csrf_refused(gateway: Gateway) -> None:
    browser = signed_in(gateway)
    other = signed_in(gateway)
    for token in (None, "forged", other.csrf("/ui/tenants")):
        form = {"name": f"csrf-{token}"}
        if token is not None:
            form["csrf"] = token
        status, _, text = browser.send("POST", "/ui/tenants", form)
        assert status == 403 and "CSRF" in text
    _, tenants = call(gateway, "GET", "/admin/tenants")
    assert not [t for t in tenants["data"] if t["name"].startswith("csrf-")]
    # The sign-in form too: without its cookie, or with a token not made for it.
    status, _, text = Browser(gateway).send("POST", "/ui/login", {"csrf": "x", "key": MASTER})
    assert status == 403 and "CSRF" in text
    # A signed-out form post: 401, nothing done.
    status, _, _ = Browser(gateway).send("POST", "/ui/tenants", {"name": "nobody"})
    assert status == 401


def test_sign_in_refusals(gateway: Gateway) -> None:
    status, text = Browser(gateway).sign_in("gw-sk-not-a-key")
    assert status == 401 and "invalid admin key" in text
    _, tenant = call(gateway, "POST", "/admin/tenants", {"name": "refusals"})
    status, text = Browser(gateway).sign_in(tenant["api_key"])
    assert status == 403 and "tenant&#39;s key cannot" in text
    # next= never leads off the dashboard.
    browser = Browser(gateway)
    token = browser.csrf("/ui/login?next=https://evil.example/")
    status, headers, _ = browser.send(
        "POST", "/ui/login", {"csrf": token, "key": MASTER, "next": "//evil.example/"}
    )
    assert status == 303 and headers["location"] == ["/ui/"]


def test_users_see_their_organisation_only(gateway: Gateway) -> None:
    _, acme = call(gateway, "POST", "/admin/tenants", {"name": "acme-app", "organization": "acme"})
    _, initech = call(gateway, "POST", "/admin/tenants", {"name": "initech-app", "organization": "initech"})
    _, user = call(gateway, "POST", "/admin/users", {"name": "ivy", "organization": "initech"})
    browser = signed_in(gateway, user["api_key"])
    for path in PAGES:
        status, _, text = browser.send("GET", path)
        assert status == 200, path
        assert "acme-app" not in text and acme["key"]["prefix"] not in text, path
    _, _, text = browser.send("GET", "/ui/tenants")
    assert "initech-app" in text
    # Admin actions answer as the admin API does: 403 with its message.
    token = browser.csrf("/ui/users")
    status, _, text = browser.send("POST", "/ui/users", {"csrf": token, "name": "mallory"})
    assert status == 403 and "only admins" in text
    # Another organisation's objects do not exist for this user.
    status, _, _ = browser.send(
        "POST", f"/ui/keys/{acme['key']['id']}/revoke", {"csrf": token}
    )
    assert status == 404
    _, key = call(gateway, "GET", f"/admin/keys/{acme['key']['id']}")
    assert key["revoked_at"] is None
    status, _, text = browser.send(
        "POST", "/ui/tenants", {"csrf": token, "name": "x", "organization": "acme"}
    )
    assert status == 403 and "you can only manage organization" in text
    assert initech["organization"] == "initech"


def test_no_secret_rendered_after_creation(gateway: Gateway) -> None:
    browser = signed_in(gateway)
    token = browser.csrf("/ui/tenants")
    status, headers, text = browser.send("POST", "/ui/tenants", {"csrf": token, "name": "secretive"})
    assert status == 201 and headers["cache-control"] == ["no-store"]
    secret = re.search(r'id="secret">([^<]+)<', text)
    assert secret is not None
    for path in (*PAGES, "/ui/keys?prefix=gw-sk-"):
        _, _, page = browser.send("GET", path)
        assert secret.group(1) not in page, path
