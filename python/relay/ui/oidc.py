"""Sign-in to the dashboard through OpenID Connect (Azure AD / Entra ID or any issuer with
discovery): the authorization code flow with state, nonce and PKCE (S256).

``begin`` sends the browser to the provider with a fresh state, nonce and PKCE verifier, kept
in a short-lived cookie signed under the session key (so any worker or replica can finish the
flow). ``finish`` checks the state, exchanges the code, verifies the ID token (signature
against the provider's published keys, issuer, audience, expiry, nonce), maps the user's role
and organisation from its claims, and issues a dashboard session. Anything wrong is refused
with :class:`SignInRefused`, whose message is safe to show on the sign-in page.

authlib builds the authorization request, the PKCE challenge and the ID token's claim checks;
its JOSE layer (joserfc) verifies the signature.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jws import JWSRegistry

from relay.admin.access import Actor
from relay.config.model import OidcConfig
from relay.ui.oidc_idp import IdentityProvider, ProviderError
from relay.ui.session import Session, SessionCodec
from relay.ui.web import safe_next as web_safe_next

__all__ = ["FLOW_COOKIE", "OidcSignIn", "SignInRefused", "actor_from_claims"]

log = logging.getLogger("relay")

# The cookie that carries one sign-in's state, nonce and PKCE verifier to the callback.
FLOW_COOKIE = "relay_oidc"
# How long a user may spend at the provider before the callback is refused.
FLOW_SECONDS = 600
# Clock skew tolerated between the provider and the gateway when checking exp/iat/nbf.
LEEWAY_S = 60
# Asymmetric algorithms only: "none" and the HMAC family (keyed with the client secret) never.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
_MAC_PURPOSE = "oidc-flow"


class SignInRefused(Exception):
    """The sign-in failed; the message says why and is safe to show to the user."""


class _Flow(msgspec.Struct, array_like=True, frozen=True):
    state: str
    nonce: str
    verifier: str
    next_path: str
    expires_at: float


def safe_next(path: str) -> str:
    """``path`` when it is a page of the dashboard, else ``/ui`` (see :func:`web.safe_next`)."""
    return web_safe_next(path, "/ui")


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name``; a dotted name reaches into nested objects when no claim has that
    exact name (Keycloak's ``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _claim_values(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def actor_from_claims(settings: OidcConfig, claims: Mapping[str, Any]) -> Actor:
    """The dashboard user an ID token's verified claims describe.

    The role comes from ``role_claim`` (a string or a list: Entra ID's ``groups`` holds group
    object ids, its ``roles`` the app roles): any value in ``admin_groups`` makes an admin, any
    in ``user_groups`` a user (with no ``user_groups``, every other user of the issuer is a
    user); anyone else is refused. The organisation comes from ``org_claim``.
    """
    names = claims.get("_claim_names")
    if isinstance(names, dict) and settings.role_claim in names:
        # Entra ID leaves the groups out of a token when a user is in too many (over 200)
        # and points to Graph instead; the gateway does not call Graph.
        raise SignInRefused(
            f"your account is in too many groups for the ID token to list them "
            f"('{settings.role_claim}' overage): in the app registration, emit only the "
            "groups assigned to the application"
        )
    values = _claim_values(claim(claims, settings.role_claim))
    if values & set(settings.admin_groups):
        role = "admin"
    elif values & set(settings.user_groups) or not settings.user_groups:
        role = "user"
    else:
        raise SignInRefused(
            f"your account has no role in this gateway: none of its '{settings.role_claim}' "
            "is mapped (ui.oidc.admin_groups, ui.oidc.user_groups); ask an administrator"
        )
    organization = "default"
    if settings.org_claim:
        org = claim(claims, settings.org_claim)
        if not isinstance(org, str) or not org.strip():
            raise SignInRefused(
                f"the ID token has no '{settings.org_claim}' claim naming your organisation "
                "(ui.oidc.org_claim)"
            )
        organization = org.strip()
    who = next(
        (
            str(claims[c])
            for c in ("preferred_username", "email", "upn", "sub")
            if isinstance(claims.get(c), str) and claims[c]
        ),
        "unknown",
    )
    return Actor(f"oidc:{who}", role, organization)


class OidcSignIn:
    """One configured OIDC provider: starts sign-ins and finishes them into sessions."""

    def __init__(self, settings: OidcConfig, codec: SessionCodec) -> None:
        self.settings = settings
        self._codec = codec
        self._idp = IdentityProvider(settings.issuer)
        redirect = urlsplit(settings.redirect_uri)
        # The flow cookie goes only to the callback's directory (``/ui/oidc``), and is Secure
        # whenever the gateway is reached over https.
        self._cookie_path = redirect.path.rsplit("/", 1)[0] or "/"
        self._secure = redirect.scheme == "https"

    async def begin(self, next_path: str) -> tuple[str, list[tuple[str, str]]]:
        """The provider's authorization URL to redirect to, and the ``Set-Cookie`` headers that
        carry this sign-in's state, nonce and PKCE verifier to the callback."""
        metadata = await self._metadata()
        flow = _Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            # RFC 7636 4.1: 43 to 128 characters of [A-Za-z0-9-._~]; 64 random bytes -> 86.
            verifier=secrets.token_urlsafe(64),
            next_path=safe_next(next_path),
            expires_at=time.time() + FLOW_SECONDS,
        )
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            self.settings.client_id,
            "code",
            redirect_uri=self.settings.redirect_uri,
            scope=self.settings.scopes,
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
        )
        value = self._codec.seal(_MAC_PURPOSE, flow)
        return str(url), [("set-cookie", self._cookie(value, FLOW_SECONDS))]

    def clear_flow_cookie(self) -> tuple[str, str]:
        """The ``Set-Cookie`` header that removes the flow cookie (after the callback)."""
        return ("set-cookie", self._cookie("", 0))

    def next_path(self, cookies: Mapping[str, str]) -> str:
        """Where the sign-in started (a dashboard page), for the redirect after the callback."""
        flow = self._read_flow(cookies.get(FLOW_COOKIE))
        return flow.next_path if flow is not None else "/ui"

    async def finish(self, query: str, cookies: Mapping[str, str]) -> tuple[Session, str]:
        """Finish the sign-in the provider redirected back with (``query`` is the callback's
        query string): the new session and its cookie value, or :class:`SignInRefused`."""
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        flow = self._read_flow(cookies.get(FLOW_COOKIE))
        if flow is None:
            raise SignInRefused(
                "this sign-in expired or was started in another browser: sign in again"
            )
        # The state ties the callback to the browser that started the flow (a forged or
        # replayed callback carries another one, or none).
        if not hmac.compare_digest(params.get("state", "").encode(), flow.state.encode()):
            raise SignInRefused(
                "the sign-in response does not match the sign-in this browser started "
                "(state mismatch): sign in again"
            )
        if "error" in params:
            error = params["error"][:100]
            description = params.get("error_description", "")[:300]
            raise SignInRefused(
                f"the identity provider refused the sign-in: {error}"
                + (f" ({description})" if description else "")
            )
        code = params.get("code")
        if not code:
            raise SignInRefused("the identity provider sent no authorization code")
        metadata = await self._metadata()
        try:
            answer = await self._idp.exchange(
                metadata,
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.settings.redirect_uri,
                    "code_verifier": flow.verifier,
                },
                self.settings.client_id,
                self.settings.client_secret,
            )
        except ProviderError as exc:
            raise SignInRefused(str(exc)) from exc
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("the identity provider's token answer has no ID token")
        claims = await self._verify(metadata, id_token, flow.nonce)
        actor = actor_from_claims(self.settings, claims)
        log.info(
            "ui: %s signed in through OIDC as %s of %s", actor.name, actor.role, actor.organization
        )
        return self._codec.issue(actor, via="oidc")

    async def _verify(
        self, metadata: Mapping[str, Any], id_token: str, nonce: str
    ) -> dict[str, Any]:
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        accepted = [a for a in ALGORITHMS if a in offered] or ["RS256"]
        registry = JWSRegistry(algorithms=accepted)
        try:
            try:
                token = jwt.decode(id_token, await self._keys(), registry=registry)
            except InvalidKeyIdError:
                # A key id the cached set lacks: the provider may have rotated its keys.
                token = jwt.decode(id_token, await self._keys(refresh=True), registry=registry)
            # No access_token in params: the gateway never uses the access token, so its
            # at_hash (optional in the code flow) is not checked.
            params = {"nonce": nonce, "client_id": self.settings.client_id}
            options = {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": self.settings.client_id},
            }
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(leeway=LEEWAY_S)
        except InvalidKeyIdError as exc:
            raise SignInRefused(
                "the ID token is signed with a key the identity provider does not publish"
            ) from exc
        except BadSignatureError as exc:
            raise SignInRefused(
                "the ID token's signature does not verify with the identity provider's keys"
            ) from exc
        except UnsupportedAlgorithmError as exc:
            raise SignInRefused(
                f"the ID token is not signed with an accepted algorithm ({', '.join(accepted)})"
            ) from exc
        except ExpiredTokenError as exc:
            raise SignInRefused("the ID token has expired: sign in again") from exc
        except MissingClaimError as exc:
            raise SignInRefused(f"the ID token lacks the '{exc.claim}' claim") from exc
        except ClaimError as exc:
            raise SignInRefused(_claim_message(exc.claim)) from exc
        except JoseError as exc:
            log.warning("oidc: unusable ID token: %r", exc)
            raise SignInRefused(f"the ID token is not usable ({exc.error})") from exc
        return dict(claims)

    async def _metadata(self) -> dict[str, Any]:
        try:
            return await self._idp.metadata()
        except ProviderError as exc:
            raise SignInRefused(str(exc)) from exc

    async def _keys(self, *, refresh: bool = False) -> Any:
        try:
            return await self._idp.keys(refresh=refresh)
        except ProviderError as exc:
            raise SignInRefused(str(exc)) from exc

    def _read_flow(self, cookie: str | None) -> _Flow | None:
        flow = self._codec.unseal(_MAC_PURPOSE, cookie, _Flow)
        return flow if flow is not None and flow.expires_at > time.time() else None

    def _cookie(self, value: str, max_age: int) -> str:
        # SameSite=Lax: the provider's redirect back is a top-level GET from another site,
        # which Lax lets through and Strict would not.
        cookie = f"{FLOW_COOKIE}={value}; Path={self._cookie_path}; Max-Age={max_age}; HttpOnly; SameSite=Lax"
        return cookie + "; Secure" if self._secure else cookie


def _claim_message(claim: str) -> str:
    return {
        "iss": "the ID token was issued by another issuer than ui.oidc.issuer",
        "aud": "the ID token was issued for another client than ui.oidc.client_id (audience)",
        "azp": "the ID token was issued for another client than ui.oidc.client_id (azp)",
        "nonce": "the ID token does not belong to this sign-in (nonce mismatch): sign in again",
        "iat": "the ID token is dated in the future (check the clocks)",
        "nbf": "the ID token is not valid yet (check the clocks)",
    }.get(claim, f"the ID token's '{claim}' claim is not valid")
