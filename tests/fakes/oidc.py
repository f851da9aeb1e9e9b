"""A local OpenID Connect provider for the tests: a real HTTP server on loopback (aiohttp, in a
thread of the test process) with discovery, JWKS, ``/authorize`` and ``/token``, signing
real RS256 ID tokens with a key generated at start.

Tokens are signed here with ``cryptography`` directly (RSASSA-PKCS1-v1_5 over SHA-256, as
RFC 7518 3.3 defines RS256), not with the JOSE library the gateway verifies with, so a bug
there cannot hide behind the same bug here.

Use::

    with start_oidc_provider(client_id="relay", redirect_uri=...) as idp:
        idp.user = {"sub": "alice", "groups": ["admins-gid"], "org": "acme"}
        ... the browser (or a test) follows the gateway's redirect to idp.issuer + "/authorize"

``/authorize`` checks the client, the exact redirect URI, ``response_type=code`` and an S256
PKCE challenge, then redirects straight back with a code for ``idp.user`` (no login page);
``/token`` checks the code (once only), the redirect URI, the PKCE verifier and the client
secret (HTTP Basic or form) and answers with an ID token carrying the request's nonce.
``idp.tamper`` makes the next tokens wrong on purpose: ``"forge"`` (signed with another key
under the published key id), ``"hs256"`` (HMAC keyed with the client secret), ``"none"``
(unsigned), ``"expired"``, ``"audience"``, ``"issuer"``, ``"nonce"``;
``idp.deny`` makes ``/authorize`` answer ``error=access_denied``. ``idp.rotate()`` switches
to a new signing key with a new key id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.threaded import Recorder, serve


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass
class SigningKey:
    """An RSA key with its key id."""

    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _uint(numbers.n),
            "e": _uint(numbers.e),
        }

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        signing_input = (
            _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        ).encode("ascii")
        signature = self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode("ascii") + "." + _b64(signature)


@dataclass
class _Grant:
    claims: dict[str, Any]
    nonce: str | None
    challenge: str
    redirect_uri: str


class FakeOidcProvider:
    """The provider's state; tests set ``user``, ``tamper`` and ``deny`` between sign-ins."""

    def __init__(self, client_id: str, client_secret: str | None, redirect_uris: list[str]) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = redirect_uris
        self.issuer = ""  # set once the server listens
        self.key = SigningKey(kid="key-1")
        self.published: list[SigningKey] = [self.key]
        self.user: dict[str, Any] = {"sub": "nobody"}
        self.tamper: str | None = None
        self.deny = False
        self.recorder = Recorder()
        self.jwks_fetches = 0
        # How the token endpoint lets clients authenticate (discovery says so); what the
        # last token request used: "basic", "post" or "none".
        self.auth_methods = ["client_secret_basic", "client_secret_post"]
        self.last_client_auth = ""
        self._grants: dict[str, _Grant] = {}

    def rotate(self) -> None:
        """Sign with a new key (new key id) and publish only it, as after a rotation."""
        self.key = SigningKey(kid=f"key-{len(self.published) + 1}")
        self.published = [self.key]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        await self.recorder.record(request)
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": self.auth_methods,
                "scopes_supported": ["openid", "profile", "email"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        await self.recorder.record(request)
        self.jwks_fetches += 1
        return web.json_response({"keys": [k.jwk() for k in self.published]})

    async def _authorize(self, request: web.Request) -> web.Response:
        await self.recorder.record(request)
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text="unknown client_id")
        # Exact match, as Entra ID and the OAuth security BCP require (no prefix, no wildcard).
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return web.Response(status=400, text="redirect_uri is not registered")
        state = q.get("state", "")
        if self.deny:
            params = {
                "error": "access_denied",
                "error_description": "the user declined",
                "state": state,
            }
            raise web.HTTPFound(redirect_uri + "?" + urlencode(params))
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="expected response_type=code with S256 PKCE")
        if "openid" not in q.get("scope", "").split():
            return web.Response(status=400, text="scope lacks openid")
        code = secrets.token_urlsafe(16)
        self._grants[code] = _Grant(
            dict(self.user), q.get("nonce"), q.get("code_challenge", ""), redirect_uri
        )
        raise web.HTTPFound(redirect_uri + "?" + urlencode({"code": code, "state": state}))

    async def _token(self, request: web.Request) -> web.Response:
        await self.recorder.record(request)
        form = await request.post()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        self.last_client_auth = "post" if secret is not None else "none"
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            self.last_client_auth = "basic"
        if client_id != self.client_id or (
            self.client_secret is not None and secret != self.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        grant = self._grants.pop(str(form.get("code", "")), None)  # a code works once
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        if _b64(hashlib.sha256(verifier.encode("ascii")).digest()) != grant.challenge:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "PKCE verifier mismatch"},
                status=400,
            )
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": self.id_token(grant.claims, grant.nonce),
            }
        )

    def id_token(self, user: dict[str, Any], nonce: str | None) -> str:
        """An ID token for ``user``, wrong in the way ``tamper`` says."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 600,
            **user,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        tamper = self.tamper
        if tamper == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif tamper == "audience":
            claims["aud"] = "another-client"
        elif tamper == "issuer":
            claims["iss"] = "https://attacker.example"
        elif tamper == "nonce":
            claims["nonce"] = "a-nonce-of-another-sign-in"
        if tamper in ("hs256", "none"):
            # The classic confusions: HMAC keyed with the client secret, or no signature.
            header = {"alg": "HS256" if tamper == "hs256" else "none", "kid": self.key.kid}
            signing_input = (
                _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
            )
            mac = hmac.new((self.client_secret or "").encode(), signing_input.encode(), "sha256")
            return signing_input + "." + (_b64(mac.digest()) if tamper == "hs256" else "")
        if tamper == "forge":
            # Another key, presenting the published key's id: only the signature betrays it.
            return SigningKey(kid="forger").sign(claims, kid=self.key.kid)
        return self.key.sign(claims)


@contextmanager
def start_oidc_provider(
    *,
    client_id: str,
    redirect_uris: list[str],
    client_secret: str | None = "s3cret-of-relay",
    host: str = "127.0.0.1",
) -> Iterator[FakeOidcProvider]:
    """Serve a :class:`FakeOidcProvider` on loopback; its ``issuer`` is its base URL, named
    with ``host`` (``localhost``: another site than a gateway on 127.0.0.1, as a real
    provider is, so that a browser treats the redirect back as cross-site)."""
    provider = FakeOidcProvider(client_id, client_secret, redirect_uris)
    with serve(provider.app()) as url:
        provider.issuer = url.replace("127.0.0.1", host)
        yield provider
