"""The dashboard in a real browser (headless Chromium) against a real ``relay serve`` on
SQLite: sign in with the admin key, create a tenant and a key, use the key with the
``openai`` SDK against the fake provider, find the request in the log and in the charts,
revoke the key; a user of another organisation sees none of it; a forged CSRF token is
refused. A screenshot of each page is kept (the folder is printed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.browser import chromium, screenshot_dir
from tests.integration.gateway import Gateway
from tests.integration.tenancy import MASTER, call, keys_config

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[Gateway]:
    config = keys_config(fake_upstream, f"sqlite:///{tmp_path / 'relay.db'}")
    gw = Gateway(config, tmp_path)
    try:
        yield gw
    finally:
        gw.stop()


class Pages:
    """The browser on the dashboard, and the screenshots it takes along the way."""

    def __init__(self, driver: WebDriver, gateway: Gateway, shots: Path, who: str) -> None:
        self.driver, self.gateway, self.shots, self.who = driver, gateway, shots, who

    def open(self, path: str) -> None:
        self.driver.get(self.gateway.url + path)

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{self.who}-{name}.png"))

    def wait(self, timeout: float) -> WebDriverWait[WebDriver]:
        # A click that navigates returns before the next page has loaded; while the old
        # document goes, Chromium can answer a lookup with "Node ... does not belong to the
        # document" (a plain WebDriverException, not a stale element): poll through it.
        return WebDriverWait(self.driver, timeout, ignored_exceptions=(WebDriverException,))

    def text(self, selector: str, timeout: float = 15.0) -> str:
        element = self.wait(timeout).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, selector))
        )
        return str(element.text)

    def wait_text(self, selector: str, text: str, timeout: float = 15.0) -> None:
        self.wait(timeout).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text)
        )

    def fill(self, form: str, **fields: str) -> None:
        for name, value in fields.items():
            element = self.driver.find_element(By.CSS_SELECTOR, f"{form} [name={name}]")
            if element.tag_name == "select":
                for option in element.find_elements(By.TAG_NAME, "option"):
                    if value in option.text:
                        option.click()
                        break
                else:
                    raise AssertionError(f"no option {value!r} in {name}")
            else:
                element.clear()
                element.send_keys(value)
        self.driver.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()

    def sign_in(self, key: str) -> None:
        self.open("/ui/")
        assert "/ui/login" in self.driver.current_url
        self.shot("login")
        self.fill("form[action='/ui/login']", key=key)
        self.wait_text("h1", "Overview")


def test_admin_journey_and_isolation(
    gateway: Gateway, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    print(f"dashboard screenshots: {shots}")
    with chromium() as driver:
        admin = Pages(driver, gateway, shots, "admin")
        admin.sign_in(MASTER)
        # The session cookie is HttpOnly: the page's scripts cannot read it.
        assert "relay_session" not in str(driver.execute_script("return document.cookie"))
        admin.shot("overview-empty")

        # A tenant (its first key is shown once), then a key of its own for the SDK.
        admin.open("/ui/tenants")
        admin.fill("#create-tenant", name="shop", organization="acme", budget_usd="5")
        first_key = admin.text("#secret")
        assert first_key.startswith("gw-sk-")
        admin.shot("tenant-created")
        admin.open("/ui/tenants")
        assert "shop" in admin.text("#tenants")
        admin.shot("tenants")
        admin.open("/ui/keys")
        admin.fill("#create-key", owner="acme/shop", name="browser", budget_usd="2")
        secret = admin.text("#secret")
        admin.shot("key-created")
        prefix = secret[:14]
        admin.open("/ui/keys")
        keys_table = admin.text("#keys")
        assert prefix in keys_table and first_key[:14] in keys_table
        # No secret is rendered after its creation.
        assert secret not in driver.page_source and first_key not in driver.page_source
        admin.shot("keys")

        client = openai.OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello dashboard"}]
        )
        assert answer.choices[0].message.content == "Echo: hello dashboard"

        # The request log, filtered by the key; refreshed by the page's own script.
        admin.open(f"/ui/requests?key_prefix={prefix}")
        driver.find_element(By.ID, "live").click()
        admin.wait_text("#requests tbody", "gpt-4o-mini")
        assert "acme/shop" in admin.text("#requests tbody")
        admin.shot("requests")
        driver.find_element(By.CSS_SELECTOR, "#requests tbody a").click()
        admin.wait_text("#attempts", "fake")
        assert "200" in admin.text("#attempts")
        admin.shot("request")

        # The charts: the key's bar in the usage chart, the month's cost on the overview.
        admin.open("/ui/usage?by=key&metric=requests&days=7")
        bars = driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar title")
        assert any(prefix in str(b.get_attribute("textContent")) for b in bars)
        assert prefix in admin.text("#usage")
        admin.shot("usage")
        admin.open("/ui/")
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
        assert "browser" in admin.text("#budgets") and "acme/shop" in admin.text("#budgets")
        admin.shot("overview")
        driver.set_window_size(390, 844)  # a phone
        admin.shot("overview-phone")
        driver.set_window_size(1280, 900)

        # Revoke: the SDK's next call with the key is refused.
        admin.open("/ui/keys")
        row = driver.find_element(By.CSS_SELECTOR, f"tr[data-prefix='{prefix}']")
        row.find_element(By.CSS_SELECTOR, "button.danger").click()
        WebDriverWait(driver, 5).until(ec.alert_is_present()).accept()
        admin.wait_text(f"tr[data-prefix='{prefix}'] .state", "revoked")
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}]
            )
        admin.open("/ui/audit")
        assert "key.revoke" in admin.text("#audit")
        admin.shot("audit")

        # A forged CSRF token: refused, nothing created.
        admin.open("/ui/tenants")
        driver.execute_script(
            "document.querySelector('#create-tenant [name=csrf]').value = 'forged'"
        )
        admin.fill("#create-tenant", name="forged-tenant")
        admin.wait_text("#error", "CSRF")
        admin.shot("csrf-refused")
        admin.open("/ui/tenants")
        assert "forged-tenant" not in admin.text("#tenants")

        # Users with roles; a user of globex for the isolation check.
        admin.open("/ui/users")
        admin.fill("#create-user", name="gina", role="user", organization="globex")
        globex_key = admin.text("#secret")
        admin.open("/ui/users")
        assert "gina" in admin.text("#users")
        admin.shot("users")
        admin.driver.find_element(By.CSS_SELECTOR, "form[action='/ui/logout'] button").click()
        admin.wait_text("h1", "Sign in")
        admin.open("/ui/keys")
        assert "/ui/login" in driver.current_url  # signed out

    status, _ = call(
        gateway, "POST", "/admin/tenants", {"name": "gadgets", "organization": "globex"}
    )
    assert status == 201
    with chromium() as driver:
        user = Pages(driver, gateway, shots, "globex-user")
        user.sign_in(globex_key)
        assert "acme" not in user.text("main")
        user.open("/ui/tenants")
        assert "gadgets" in user.text("#tenants") and "shop" not in user.text("#tenants")
        user.open("/ui/keys")
        assert prefix not in user.text("#keys")
        user.open("/ui/requests")
        assert "acme" not in user.text("#log")
        user.open("/ui/users")
        assert not driver.find_elements(By.ID, "create-user")  # not an admin action for users
        user.open("/ui/audit")
        assert "acme" not in user.text("#audit")
        user.shot("audit")
