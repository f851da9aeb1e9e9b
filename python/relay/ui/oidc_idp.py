"""The identity provider as the dashboard's OIDC sign-in sees it: its discovery document, its
signing keys (JWKS) and its token endpoint, reached over HTTP with aiohttp.

Sign-ins are rare, so each call opens a small ``ClientSession`` of its own (the gateway's
upstream pool in ``relay.upstream`` is for LLM providers and is not borrowed): nothing stays
open between sign-ins and nothing needs closing at shutdown. Every call has a timeout, and
the discovery document and keys are cached; the keys are fetched again when a token names a
key id the cache lacks (the provider rotated its keys).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import msgspec
from joserfc.jwk import KeySet

log = logging.getLogger("relay")

# A discovery document, a key set or a token answer is a few KiB; refuse anything far larger.
MAX_BODY_BYTES = 1 << 20
# The discovery document changes rarely (keys rotate through jwks_uri): refresh it hourly.
METADATA_TTL_S = 3600.0


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable; the message is safe
    to show (it names no secret)."""


def secure_url(url: str) -> bool:
    """https, or plain http to a loopback host (a provider or gateway on the same machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")


class IdentityProvider:
    """Discovery, keys and the token endpoint of one issuer."""

    def __init__(self, issuer: str, *, timeout_s: float = 10.0) -> None:
        self.issuer = issuer
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        # One fetch at a time: a burst of sign-ins after a restart asks the provider once.
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (``.well-known/openid-configuration``), checked and cached."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL_S:
            return self._metadata
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at >= METADATA_TTL_S:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await self._get_json(url)
                self._metadata = self._checked(document)
                self._metadata_at = time.monotonic()
        return self._metadata

    def _checked(self, document: Any) -> dict[str, Any]:
        if not isinstance(document, dict):
            raise ProviderError("the identity provider's discovery document is not an object")
        issuer = document.get("issuer")
        # OpenID Connect Discovery 4.3: the document's issuer is the one configured, exactly
        # (a trailing slash aside, which some providers add); tokens are checked against it.
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer.rstrip("/"):
            raise ProviderError(
                f"the identity provider's discovery document names issuer {issuer!r}, "
                f"not {self.issuer!r} (ui.oidc.issuer)"
            )
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(field)
            if not isinstance(value, str) or not secure_url(value):
                raise ProviderError(
                    f"the identity provider's discovery document has no https {field}"
                )
        return document

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys; ``refresh`` fetches them again (an unknown key id)."""
        if self._keys is not None and not refresh:
            return self._keys
        jwks_uri = str((await self.metadata())["jwks_uri"])
        # Sign-ins that found the same unknown key id together share one fetch.
        asked_at = time.monotonic()
        async with self._lock:
            # Tokens reach the gateway only from the token endpoint (over TLS), so an unknown
            # key id means a rotation at the provider, not an attacker's choice: refetch.
            if self._keys is None or (refresh and self._keys_at <= asked_at):
                document = await self._get_json(jwks_uri)
                try:
                    self._keys = KeySet.import_key_set(document)
                except Exception as exc:  # joserfc raises several kinds for a bad set
                    raise ProviderError(
                        f"the identity provider's key set (jwks_uri) is not usable: {exc}"
                    ) from exc
                self._keys_at = time.monotonic()
        assert self._keys is not None
        return self._keys

    async def exchange(
        self,
        metadata: dict[str, Any],
        form: dict[str, str],
        client_id: str,
        client_secret: str | None,
    ) -> dict[str, Any]:
        """POST the authorization code grant to the token endpoint; its JSON answer.

        A confidential client authenticates with HTTP Basic (the default of OpenID Connect
        Core 9) unless the provider lists only ``client_secret_post``; a public client (no
        secret) sends its ``client_id`` and relies on PKCE.
        """
        headers = {"accept": "application/json"}
        body = dict(form, client_id=client_id)
        if client_secret is not None:
            methods = metadata.get("token_endpoint_auth_methods_supported") or [
                "client_secret_basic"
            ]
            if "client_secret_basic" in methods:
                # RFC 6749 2.3.1: both parts form-urlencoded before they are joined.
                pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
                headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            else:
                body["client_secret"] = client_secret
        url = str(metadata["token_endpoint"])
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as http,
                http.post(url, data=body, headers=headers, allow_redirects=False) as response,
            ):
                raw = await response.content.read(MAX_BODY_BYTES + 1)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("oidc: the token endpoint %s failed: %r", url, exc)
            raise ProviderError("the identity provider's token endpoint did not answer") from exc
        answer = _decode(raw, "token endpoint")
        if status != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            detail = answer.get("error_description") if isinstance(answer, dict) else None
            log.warning("oidc: the token endpoint answered %s: %s %s", status, error, detail)
            raise ProviderError(
                f"the identity provider refused the authorization code ({error or status})"
            )
        return answer

    async def _get_json(self, url: str) -> Any:
        if not secure_url(url):
            raise ProviderError(f"refusing to fetch {url!r}: not https")
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as http,
                http.get(url, headers={"accept": "application/json"}) as response,
            ):
                raw = await response.content.read(MAX_BODY_BYTES + 1)
                if response.status != 200:
                    raise ProviderError(
                        f"the identity provider answered {response.status} to {url}"
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("oidc: fetching %s failed: %r", url, exc)
            raise ProviderError(f"the identity provider did not answer at {url}") from exc
        return _decode(raw, url)


def _decode(raw: bytes, where: str) -> Any:
    if len(raw) > MAX_BODY_BYTES:
        raise ProviderError(f"the identity provider's answer from {where} is too large")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProviderError(f"the identity provider's answer from {where} is not JSON") from exc
