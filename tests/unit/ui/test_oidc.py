"""OIDC sign-in (relay.ui.oidc) against a local provider on loopback that signs real RS256
tokens: the browser's part (follow the redirect to /authorize, come back with a code) is
played by an aiohttp client that keeps the cookies the way a browser would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from relay.config.model import OidcConfig
from relay.ui.oidc import FLOW_COOKIE, OidcSignIn, SignInRefused, actor_from_claims, safe_next
from relay.ui.session import Session, SessionCodec
from tests.fakes.oidc import FakeOidcProvider, start_oidc_provider

REDIRECT = "http://127.0.0.1:8080/ui/oidc/callback"
ADMINS, USERS = "0b7c1e5a-admins", "5f2d9c11-users"


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeOidcProvider]:
    with start_oidc_provider(client_id="relay-dashboard", redirect_uris=[REDIRECT]) as provider:
        yield provider


@pytest.fixture
def provider(idp: FakeOidcProvider) -> FakeOidcProvider:
    idp.tamper, idp.deny = None, False
    idp.client_secret = "s3cret-of-relay"
    idp.auth_methods = ["client_secret_basic", "client_secret_post"]
    idp.user = {
        "sub": "u-1",
        "preferred_username": "alice@acme.test",
        "groups": [ADMINS],
        "org": "acme",
    }
    return idp


def settings(idp: FakeOidcProvider, **overrides: Any) -> OidcConfig:
    fields: dict[str, Any] = {
        "issuer": idp.issuer,
        "client_id": "relay-dashboard",
        "client_secret": "s3cret-of-relay",
        "redirect_uri": REDIRECT,
        "role_claim": "groups",
        "admin_groups": [ADMINS],
        "user_groups": [USERS],
        "org_claim": "org",
    }
    fields.update(overrides)
    return OidcConfig(**fields)


CODEC = SessionCodec(b"a session secret of the tests")


def cookie_jar(set_cookies: list[tuple[str, str]]) -> dict[str, str]:
    """What the browser sends back: name=value of each Set-Cookie."""
    jar = {}
    for _, header in set_cookies:
        name, _, rest = header.partition("=")
        jar[name] = rest.split(";", 1)[0]
    return jar


async def authorize(url: str) -> str:
    """Follow the authorization URL as a browser would; the callback's query string."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, allow_redirects=False) as response,
    ):
        assert response.status == 302, await response.text()
        location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return urlsplit(location).query


async def sign_in(sign: OidcSignIn, *, next_path: str = "/ui/keys") -> tuple[Session, str]:
    url, cookies = await sign.begin(next_path)
    return await sign.finish(await authorize(url), cookie_jar(cookies))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def refused(sign: OidcSignIn, **kwargs: Any) -> str:
    with pytest.raises(SignInRefused) as caught:
        run(sign_in(sign, **kwargs))
    return str(caught.value)


def test_admin_group_signs_in_as_admin(provider: FakeOidcProvider) -> None:
    session, cookie = run(sign_in(OidcSignIn(settings(provider), CODEC)))
    assert session.actor.role == "admin"
    assert session.actor.organization == "acme"
    assert session.actor.name == "oidc:alice@acme.test"
    assert session.via == "oidc"
    # The cookie is a real dashboard session any worker can read.
    assert CODEC.read(cookie) == session


def test_authorization_request_carries_state_nonce_and_s256_pkce(
    provider: FakeOidcProvider,
) -> None:
    sign = OidcSignIn(settings(provider, scopes=["openid", "email"]), CODEC)
    url, cookies = run(sign.begin("/ui"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(provider.issuer + "/authorize?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "relay-dashboard"
    assert query["redirect_uri"] == REDIRECT
    assert query["scope"] == "openid email"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256 digest
    ((name, header),) = cookies
    assert name == "set-cookie"
    assert header.startswith(FLOW_COOKIE + "=")
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/ui/oidc" in header
    # The verifier travels only in the signed cookie, never in the URL.
    assert "code_verifier" not in url
    # Each sign-in has its own state and nonce.
    url2, _ = run(sign.begin("/ui"))
    assert parse_qs(urlsplit(url2).query)["state"][0] != query["state"]


def test_flow_cookie_is_secure_behind_https(provider: FakeOidcProvider) -> None:
    sign = OidcSignIn(
        settings(provider, redirect_uri="https://relay.example.com/ui/oidc/callback"), CODEC
    )
    _, ((_, header),) = run(sign.begin("/ui"))
    assert header.endswith("; Secure")


def test_user_of_another_organisation_gets_that_organisation(provider: FakeOidcProvider) -> None:
    provider.user = {
        "sub": "u-2",
        "email": "bob@globex.test",
        "groups": [USERS, "other"],
        "org": "globex",
    }
    session, _ = run(sign_in(OidcSignIn(settings(provider), CODEC)))
    assert (session.actor.role, session.actor.organization) == ("user", "globex")
    assert session.actor.name == "oidc:bob@globex.test"
    assert session.actor.org_filter() == "globex"


def test_user_in_no_mapped_group_is_refused(provider: FakeOidcProvider) -> None:
    provider.user = {"sub": "u-3", "groups": ["some-other-group"], "org": "acme"}
    message = refused(OidcSignIn(settings(provider), CODEC))
    assert "no role in this gateway" in message and "'groups'" in message


def test_token_signed_with_another_key_is_refused(provider: FakeOidcProvider) -> None:
    provider.tamper = "forge"
    assert "signature does not verify" in refused(OidcSignIn(settings(provider), CODEC))


@pytest.mark.parametrize("tamper", ["hs256", "none"])
def test_hmac_or_unsigned_token_is_refused(provider: FakeOidcProvider, tamper: str) -> None:
    provider.tamper = tamper
    message = refused(OidcSignIn(settings(provider), CODEC))
    assert message == "the ID token is not signed with an accepted algorithm (RS256)"


def test_client_authentication_follows_discovery(provider: FakeOidcProvider) -> None:
    run(sign_in(OidcSignIn(settings(provider), CODEC)))
    assert provider.last_client_auth == "basic"
    provider.auth_methods = ["client_secret_post"]
    sign = OidcSignIn(settings(provider), CODEC)
    assert run(sign_in(sign))[0].actor.role == "admin"
    assert provider.last_client_auth == "post"
    # A public client (no secret) relies on PKCE alone.
    provider.client_secret = None
    public = OidcSignIn(settings(provider, client_secret=None), CODEC)
    assert run(sign_in(public))[0].actor.role == "admin"
    assert provider.last_client_auth == "none"


def test_expired_token_is_refused(provider: FakeOidcProvider) -> None:
    provider.tamper = "expired"
    assert "expired" in refused(OidcSignIn(settings(provider), CODEC))


def test_token_for_another_audience_is_refused(provider: FakeOidcProvider) -> None:
    provider.tamper = "audience"
    assert "another client" in refused(OidcSignIn(settings(provider), CODEC))


def test_token_from_another_issuer_is_refused(provider: FakeOidcProvider) -> None:
    provider.tamper = "issuer"
    assert "another issuer" in refused(OidcSignIn(settings(provider), CODEC))


def test_token_with_another_nonce_is_refused(provider: FakeOidcProvider) -> None:
    provider.tamper = "nonce"
    assert "nonce mismatch" in refused(OidcSignIn(settings(provider), CODEC))


def test_callback_of_another_sign_in_is_refused(provider: FakeOidcProvider) -> None:
    """A callback (code and state) from one sign-in presented with the flow cookie of
    another: the state check refuses it before the code is ever used."""
    sign = OidcSignIn(settings(provider), CODEC)

    async def scenario() -> None:
        url_a, _cookies_a = await sign.begin("/ui")
        _url_b, cookies_b = await sign.begin("/ui")
        query_a = await authorize(url_a)
        with pytest.raises(SignInRefused, match="state mismatch"):
            await sign.finish(query_a, cookie_jar(cookies_b))
        # A forged callback without any state, too.
        code = parse_qs(query_a)["code"][0]
        with pytest.raises(SignInRefused, match="state mismatch"):
            await sign.finish(f"code={code}", cookie_jar(cookies_b))

    run(scenario())


def test_replayed_callback_is_refused(provider: FakeOidcProvider) -> None:
    """The same callback twice: the provider takes a code once, and the second try fails."""
    sign = OidcSignIn(settings(provider), CODEC)

    async def scenario() -> None:
        url, cookies = await sign.begin("/ui")
        query = await authorize(url)
        await sign.finish(query, cookie_jar(cookies))
        with pytest.raises(
            SignInRefused, match=r"refused the authorization code \(invalid_grant\)"
        ):
            await sign.finish(query, cookie_jar(cookies))

    run(scenario())


def test_callback_without_or_with_a_tampered_flow_cookie_is_refused(
    provider: FakeOidcProvider,
) -> None:
    sign = OidcSignIn(settings(provider), CODEC)

    async def scenario() -> None:
        url, cookies = await sign.begin("/ui")
        query = await authorize(url)
        with pytest.raises(SignInRefused, match="expired or was started in another browser"):
            await sign.finish(query, {})
        jar = cookie_jar(cookies)
        payload, _, mac = jar[FLOW_COOKIE].rpartition(".")
        with pytest.raises(SignInRefused, match="expired or was started in another browser"):
            await sign.finish(query, {FLOW_COOKIE: payload + "x." + mac})
        # A flow cookie signed under another gateway's secret.
        other = OidcSignIn(settings(provider), SessionCodec(b"another gateway's secret"))
        _, foreign = await other.begin("/ui")
        with pytest.raises(SignInRefused, match="expired or was started in another browser"):
            await sign.finish(query, cookie_jar(foreign))

    run(scenario())


def test_provider_error_is_shown(provider: FakeOidcProvider) -> None:
    provider.deny = True
    message = refused(OidcSignIn(settings(provider), CODEC))
    assert message == "the identity provider refused the sign-in: access_denied (the user declined)"


def test_wrong_client_secret_is_refused(provider: FakeOidcProvider) -> None:
    message = refused(OidcSignIn(settings(provider, client_secret="wrong"), CODEC))
    assert "refused the authorization code (invalid_client)" in message
    assert "wrong" not in message


def test_rotated_keys_are_fetched_again(provider: FakeOidcProvider) -> None:
    sign = OidcSignIn(settings(provider), CODEC)
    run(sign_in(sign))
    fetches = provider.jwks_fetches
    run(sign_in(sign))
    assert provider.jwks_fetches == fetches  # cached
    provider.rotate()
    try:
        session, _ = run(sign_in(sign))
        assert session.actor.role == "admin"
        assert provider.jwks_fetches == fetches + 1
    finally:
        provider.rotate()


def test_issuer_mismatch_in_discovery_is_refused(provider: FakeOidcProvider) -> None:
    # The same server under another name: its discovery document names another issuer.
    other_name = provider.issuer.replace("127.0.0.1", "localhost")
    sign = OidcSignIn(settings(provider, issuer=other_name), CODEC)
    with pytest.raises(SignInRefused, match="discovery document names issuer"):
        run(sign.begin("/ui"))


def test_unreachable_provider_is_refused_with_a_message() -> None:
    config = OidcConfig(issuer="http://127.0.0.1:9", client_id="c", redirect_uri=REDIRECT)
    with pytest.raises(SignInRefused, match="did not answer"):
        run(OidcSignIn(config, CODEC).begin("/ui"))


def test_next_path_survives_the_round_trip_and_stays_on_the_dashboard(
    provider: FakeOidcProvider,
) -> None:
    sign = OidcSignIn(settings(provider), CODEC)
    _, cookies = run(sign.begin("/ui/logs?model=gpt-4o"))
    assert sign.next_path(cookie_jar(cookies)) == "/ui/logs?model=gpt-4o"
    for hostile in ("//evil.example/ui", "https://evil.example", "/uix", "/ui\\@evil", "/admin"):
        assert safe_next(hostile) == "/ui", hostile
    assert sign.clear_flow_cookie()[1].startswith(FLOW_COOKIE + "=;")


def test_role_mapping_from_claims() -> None:
    base = OidcConfig(
        issuer="https://idp", client_id="c", role_claim="roles", admin_groups=["Relay.Admin"]
    )
    assert actor_from_claims(base, {"sub": "s", "roles": "Relay.Admin"}).role == "admin"
    # Without user_groups every other user of the issuer is a user, of "default".
    anyone = actor_from_claims(base, {"sub": "s"})
    assert (anyone.role, anyone.organization) == ("user", "default")
    # Entra ID's groups overage: the token points to Graph instead of listing the groups.
    groups = OidcConfig(
        issuer="https://idp", client_id="c", role_claim="groups", admin_groups=["g"]
    )
    with pytest.raises(SignInRefused, match="too many groups"):
        actor_from_claims(groups, {"sub": "s", "_claim_names": {"groups": "src1"}})
    tid = OidcConfig(issuer="https://idp", client_id="c", org_claim="tid")
    with pytest.raises(SignInRefused, match="no 'tid' claim"):
        actor_from_claims(tid, {"sub": "s"})
    assert actor_from_claims(tid, {"sub": "s", "tid": "72f988bf"}).organization == "72f988bf"


def test_dotted_claims_reach_into_objects() -> None:
    keycloak = OidcConfig(
        issuer="https://idp",
        client_id="c",
        role_claim="realm_access.roles",
        admin_groups=["relay-admin"],
        user_groups=["relay-user"],
        org_claim="org.name",
    )
    claims = {"sub": "s", "realm_access": {"roles": ["relay-admin"]}, "org": {"name": "acme"}}
    actor = actor_from_claims(keycloak, claims)
    assert (actor.role, actor.organization) == ("admin", "acme")
    with pytest.raises(SignInRefused, match="no role"):
        actor_from_claims(
            keycloak, {"sub": "s", "realm_access": "relay-admin", "org": {"name": "a"}}
        )


def test_flow_and_session_cookies_cannot_pass_for_each_other(provider: FakeOidcProvider) -> None:
    sign = OidcSignIn(settings(provider), CODEC)
    _, cookies = run(sign.begin("/ui"))
    flow = cookie_jar(cookies)[FLOW_COOKIE]
    assert CODEC.read(flow) is None
    _, session_cookie = run(sign_in(sign))
    with pytest.raises(SignInRefused, match="expired or was started in another browser"):
        run(sign.finish("code=c&state=s", {FLOW_COOKIE: session_cookie}))
