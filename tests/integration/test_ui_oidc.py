"""OIDC sign-in to the dashboard through the real server (``relay serve`` on SQLite) against a
local OpenID Connect provider that signs real RS256 tokens (tests/fakes/oidc.py).

The client follows the redirects as a browser does (gateway -> provider -> gateway) and keeps
the cookies; then the pages show what the signed-in user's organisation may see, and no more.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import openai
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import tests.integration.gateway as gateway_module
from tests.fakes.oidc import FakeOidcProvider, start_oidc_provider
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.browser import chromium, screenshot_dir
from tests.integration.gateway import Gateway, free_port
from tests.integration.tenancy import call, keys_config

pytestmark = pytest.mark.integration

ADMINS, USERS = "0b7c1e5a-admins", "5f2d9c11-users"
ALICE = {
    "sub": "u-alice",
    "preferred_username": "alice@acme.test",
    "groups": [ADMINS],
    "tid": "acme",
}
BOB = {"sub": "u-bob", "preferred_username": "bob@globex.test", "groups": [USERS], "tid": "globex"}


@dataclass
class World:
    gateway: Gateway
    idp: FakeOidcProvider
    requests: dict[str, str]  # organisation -> an x-request-id of its tenant


@pytest.fixture(scope="module")
def world(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("ui-oidc")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/ui/oidc/callback"
    with (
        # "localhost": another site than the gateway's 127.0.0.1, as a real provider is.
        start_oidc_provider(
            client_id="relay-dashboard", redirect_uris=[callback], host="localhost"
        ) as idp,
        pytest.MonkeyPatch.context() as patch,
    ):
        config = keys_config(fake_upstream, f"sqlite:///{tmp / 'relay.db'}")
        config["ui"] = {
            "session_secret": "a session secret of the OIDC tests",
            "oidc": {
                "issuer": idp.issuer,
                "client_id": "relay-dashboard",
                "client_secret": "${RELAY_OIDC_CLIENT_SECRET}",
                "redirect_uri": callback,
                "role_claim": "groups",
                "admin_groups": [ADMINS],
                "user_groups": [USERS],
                "org_claim": "tid",
            },
        }
        # The callback URL names the gateway's port, so the port is chosen before it starts.
        patch.setattr(gateway_module, "free_port", lambda: port)
        gateway = Gateway(config, tmp, env={"RELAY_OIDC_CLIENT_SECRET": "s3cret-of-relay"})
        try:
            requests = {}
            for org in ("acme", "globex"):
                status, tenant = call(
                    gateway, "POST", "/admin/tenants", {"name": f"{org}-team", "organization": org}
                )
                assert status == 201, tenant
                client = openai.OpenAI(
                    base_url=gateway.base_url, api_key=tenant["api_key"], max_retries=0
                )
                requests[org] = f"oidc-{org}-request"
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"hello from {org}"}],
                    extra_headers={"x-request-id": requests[org]},
                )
            wait_for_ledger(gateway, requests.values())
            yield World(gateway, idp, requests)
        finally:
            gateway.stop()


def wait_for_ledger(gateway: Gateway, request_ids: Any) -> None:
    for rid in request_ids:
        for _ in range(200):
            if call(gateway, "GET", f"/admin/requests/{rid}")[0] == 200:
                break
            asyncio.run(asyncio.sleep(0.05))
        else:
            raise AssertionError(f"{rid} never reached the ledger")


@pytest.fixture
def idp(world: World) -> FakeOidcProvider:
    world.idp.tamper, world.idp.deny, world.idp.user = None, False, dict(ALICE)
    return world.idp


@dataclass
class Visit:
    """Where a browser ended up, what it read there, and the cookies it holds."""

    status: int
    url: str
    text: str
    cookies: dict[str, str]
    history: list[str]


def browse(world: World, *paths: str, start: str = "/ui/oidc/login") -> list[Visit]:
    """Sign in (``start``, following every redirect with one cookie jar), then visit ``paths``."""

    async def run() -> list[Visit]:
        # unsafe: keep cookies of an IP-address host (127.0.0.1), as a browser does.
        jar = aiohttp.CookieJar(unsafe=True)
        visits = []
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            for path in (start, *paths):
                async with http.get(world.gateway.url + path) as response:
                    text = html.unescape(await response.text())
                    cookies = {c.key: c.value for c in jar}
                    history = [str(r.url) for r in response.history]
                    visits.append(Visit(response.status, str(response.url), text, cookies, history))
        return visits

    return asyncio.run(run())


def test_admin_group_signs_in_as_admin(world: World, idp: FakeOidcProvider) -> None:
    signed_in, tenants = browse(world, "/ui/tenants")
    assert signed_in.status == 200, signed_in.text
    assert signed_in.url == world.gateway.url + "/ui/"
    # gateway -> provider -> gateway's callback -> the overview
    assert [u.split("?")[0] for u in signed_in.history] == [
        world.gateway.url + "/ui/oidc/login",
        idp.issuer + "/authorize",
        world.gateway.url + "/ui/oidc/callback",
    ]
    assert "relay_session" in signed_in.cookies
    assert "relay_oidc" not in signed_in.cookies  # the flow's cookie is cleared
    assert "alice@acme.test" in signed_in.text
    # An admin sees every organisation.
    assert "acme-team" in tenants.text and "globex-team" in tenants.text


def test_user_of_another_organisation_sees_only_its_own(
    world: World, idp: FakeOidcProvider
) -> None:
    idp.user = dict(BOB)
    acme, globex = world.requests["acme"], world.requests["globex"]
    signed_in, tenants, log, own, other = browse(
        world, "/ui/tenants", "/ui/requests", f"/ui/requests/{globex}", f"/ui/requests/{acme}"
    )
    assert signed_in.status == 200 and "bob@globex.test" in signed_in.text
    assert "globex-team" in tenants.text and "acme-team" not in tenants.text
    assert "globex/globex-team" in log.text and "acme/" not in log.text
    assert own.status == 200 and globex in own.text
    # Another organisation's request looks the same as one that does not exist.
    assert other.status == 404 and "acme-team" not in other.text


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("forge", "the ID token's signature does not verify with the identity provider's keys"),
        ("expired", "the ID token has expired"),
        ("audience", "the ID token was issued for another client than ui.oidc.client_id"),
        ("nonce", "the ID token does not belong to this sign-in (nonce mismatch)"),
    ],
)
def test_bad_tokens_are_refused(
    world: World, idp: FakeOidcProvider, tamper: str, message: str
) -> None:
    idp.tamper = tamper
    (refused,) = browse(world)
    assert refused.status == 403
    assert message in refused.text
    assert "relay_session" not in refused.cookies


def test_user_in_no_mapped_group_is_refused(world: World, idp: FakeOidcProvider) -> None:
    idp.user = {**BOB, "groups": ["some-other-group"]}
    (refused,) = browse(world)
    assert refused.status == 403
    assert "your account has no role in this gateway" in refused.text
    assert "relay_session" not in refused.cookies


def test_callback_with_a_wrong_state_is_refused(world: World, idp: FakeOidcProvider) -> None:
    """A callback whose state is not the one this browser's sign-in started with (a forged
    link, or a code meant for another browser) never reaches the token endpoint."""

    async def run() -> tuple[int, str, dict[str, str]]:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(world.gateway.url + "/ui/oidc/login", allow_redirects=False) as r:
                assert r.status in (302, 303), await r.text()
            async with http.get(
                world.gateway.url + "/ui/oidc/callback?code=stolen-code&state=forged-state"
            ) as response:
                return (
                    response.status,
                    html.unescape(await response.text()),
                    {c.key: c.value for c in jar},
                )

    tokens_before = sum(1 for r in idp.recorder.requests if r["path"] == "/token")
    status, text, cookies = asyncio.run(run())
    assert status == 403
    assert "state mismatch" in text
    assert "relay_session" not in cookies
    assert sum(1 for r in idp.recorder.requests if r["path"] == "/token") == tokens_before


def test_provider_refusal_is_shown(world: World, idp: FakeOidcProvider) -> None:
    idp.deny = True
    (refused,) = browse(world)
    assert refused.status == 403
    assert (
        "the identity provider refused the sign-in: access_denied (the user declined)"
        in refused.text
    )


def test_sign_in_page_offers_sso(world: World) -> None:
    async def run() -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.get(world.gateway.url + "/ui/login") as response,
        ):
            return await response.text()

    assert "/ui/oidc/login" in asyncio.run(run())


def sso_in_browser(driver: WebDriver, world: World, start: str) -> str:
    """Open ``start`` signed out, press "Sign in with SSO", and wait to land back on the
    dashboard; the path the browser ends on."""
    driver.get(world.gateway.url + start)
    assert urlsplit(driver.current_url).path == "/ui/login"
    driver.find_element(By.ID, "sso").click()
    gateway = urlsplit(world.gateway.url).netloc

    def back(d: WebDriver) -> bool:
        # Redirects commit no page: the browser shows either where the callback sent it
        # or, when refused, the callback's own page.
        url = urlsplit(d.current_url)
        done = d.execute_script("return document.readyState") == "complete"
        return done and url.netloc == gateway and url.path not in ("/ui/login", "/ui/oidc/login")

    # A script run while the page changes can fail with a plain WebDriverException: retry.
    WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,)).until(back)
    return urlsplit(driver.current_url).path


def body(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_sign_in_in_a_real_browser(world: World, idp: FakeOidcProvider, tmp_path: Path) -> None:
    """Headless Chromium: the provider's redirect back is a cross-site navigation (provider
    on localhost, gateway on 127.0.0.1), which the SameSite=Lax flow cookie survives."""
    shots = screenshot_dir(tmp_path)
    print(f"OIDC screenshots: {shots}")
    with chromium() as driver:
        assert sso_in_browser(driver, world, "/ui/tenants") == "/ui/"
        assert "admin · acme" in body(driver)
        driver.save_screenshot(str(shots / "oidc-admin-overview.png"))
        driver.get(world.gateway.url + "/ui/tenants")
        assert "acme-team" in body(driver) and "globex-team" in body(driver)
        cookies = {c["name"]: c for c in driver.get_cookies()}
        assert cookies["relay_session"]["httpOnly"] and "relay_oidc" not in cookies
    idp.user = dict(BOB)
    with chromium() as driver:
        assert sso_in_browser(driver, world, "/ui/") == "/ui/"
        assert "user · globex" in body(driver)
        driver.get(world.gateway.url + "/ui/tenants")
        assert "globex-team" in body(driver) and "acme-team" not in body(driver)
        driver.save_screenshot(str(shots / "oidc-globex-user-tenants.png"))
    idp.tamper = "forge"
    with chromium() as driver:
        assert sso_in_browser(driver, world, "/ui/") == "/ui/oidc/callback"
        error = driver.find_element(By.ID, "error").text
        assert "signature does not verify" in error
        assert "relay_session" not in {c["name"] for c in driver.get_cookies()}
        driver.save_screenshot(str(shots / "oidc-forged-token-refused.png"))
