"""The ``ui.oidc`` section: what check-config accepts and what it names as wrong."""

from __future__ import annotations

import pytest

import relay.config.oidc
from relay.config import ConfigError, parse_config

ENTRA = """
ui:
  oidc:
    issuer: https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0
    client_id: 3f1c2b9e-0000-4a6e-9d4f-8c2b1e7a5d10
    client_secret: ${RELAY_OIDC_SECRET}
    redirect_uri: https://relay.example.com/ui/oidc/callback
    role_claim: groups
    admin_groups: [0b7c1e5a-2f4d-4c8e-9a61-3d5e7f9b2c10]
    user_groups: [5f2d9c11-8e3a-4b7d-a2c6-1e9f0d4b6a77]
    org_claim: tid
"""


def problems_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t", env={"RELAY_OIDC_SECRET": "s"})
    return "\n".join(info.value.problems)


def test_an_entra_id_block_passes() -> None:
    oidc = parse_config(ENTRA, "t", env={"RELAY_OIDC_SECRET": "s"}).ui.oidc
    assert oidc is not None
    assert (oidc.client_secret, oidc.org_claim, oidc.scopes) == (
        "s",
        "tid",
        ["openid", "profile", "email"],
    )


def test_a_local_provider_over_plain_http_passes() -> None:
    text = (
        "ui: {oidc: {issuer: 'http://127.0.0.1:5556', client_id: relay,"
        " redirect_uri: 'http://localhost:8080/ui/oidc/callback'}}\n"
    )
    assert parse_config(text, "t", env={}).ui.oidc is not None


def test_every_mistake_is_named() -> None:
    text = (
        "ui: {oidc: {issuer: 'http://idp.example.com', client_id: ' ',"
        " redirect_uri: 'http://relay.example.com/ui/oidc/callback', scopes: [profile],"
        " role_claim: '', admin_groups: [''], org_claim: ''}}\n"
    )
    problems = problems_of(text)
    assert "ui.oidc.issuer: expected the issuer's https URL" in problems
    assert "ui.oidc.client_id: expected the client (application) id" in problems
    assert "ui.oidc.redirect_uri: expected an https URL" in problems
    assert "ui.oidc.scopes: expected 'openid' among the scopes" in problems
    assert "ui.oidc.role_claim: expected the name of a claim" in problems
    assert "ui.oidc.admin_groups: expected non-empty group ids" in problems
    assert "ui.oidc.org_claim: expected the name of a claim" in problems


def test_the_callback_must_be_the_dashboards() -> None:
    missing = problems_of("ui: {oidc: {issuer: 'https://idp.example.com', client_id: c}}\n")
    assert "ui.oidc.redirect_uri: expected the callback URL registered" in missing
    elsewhere = problems_of(
        "ui: {oidc: {issuer: 'https://idp.example.com', client_id: c,"
        " redirect_uri: 'https://relay.example.com/callback'}}\n"
    )
    assert "a URL ending in /ui/oidc/callback" in elsewhere


@pytest.mark.parametrize("tenant", ["common", "organizations", "consumers"])
def test_entra_multi_tenant_endpoints_are_refused(tenant: str) -> None:
    text = ENTRA.replace("72f988bf-86f1-41af-91ab-2d7cd011db47", tenant)
    assert f"'{tenant}' is Entra ID's multi-tenant endpoint" in problems_of(text)


def test_the_sso_extra_must_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module of the extra that this environment lacks (the test extra installs the real ones).
    monkeypatch.setattr(relay.config.oidc, "SSO_MODULES", ("authlib", "relay_absent_module"))
    assert (
        "ui.oidc: OIDC sign-in needs relay_absent_module (not installed): "
        "pip install 'relay-gateway[sso]'"
    ) in problems_of(ENTRA)


def test_several_workers_need_a_shared_session_secret() -> None:
    text = ENTRA + "server: {workers: 2}\n"
    assert (
        "ui.session_secret: OIDC sign-in on 2 workers or replicas needs one session secret "
        "they share"
    ) in problems_of(text)
    for shared in ("  session_secret: a-secret-of-32-characters-or-so\n", None):
        env = {"RELAY_OIDC_SECRET": "s"}
        if shared is None:
            env["RELAY_ADMIN_KEY"] = "an-admin-key-of-enough-length"
            block = text
        else:
            block = text.replace("ui:\n", "ui:\n" + shared)
        assert parse_config(block, "t", env=env).ui.oidc is not None
