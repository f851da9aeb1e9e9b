"""The dashboard's paths, and the interface of its OIDC sign-in (``relay.ui.oidc``).

The dashboard routes ``GET /ui/oidc/login`` and ``GET /ui/oidc/callback`` to an object built
as ``relay.ui.oidc.OidcSignIn(settings, codec)`` when ``ui.oidc`` is set. The module is
imported lazily: the dashboard works without it (the "Sign in with SSO" link is then absent).

The flow as the dashboard drives it:

- ``GET /ui/oidc/login?next=/ui/...``: ``url, cookies = await sign_in.begin(next_path)``; the
  dashboard answers ``302 Location: url`` with ``cookies`` (``("set-cookie", "...")`` header
  pairs: the state, nonce and PKCE verifier, named ``relay_oidc...`` so the dashboard can
  clear them after the callback; HttpOnly, SameSite=Lax, Path=/ui/oidc, short-lived).
- ``GET /ui/oidc/callback?code=...&state=...``: ``session, cookie = await
  sign_in.finish(query, cookies)`` with the raw query string and the request's cookies by
  name; the dashboard sets ``cookie`` as the session cookie (its own attributes), clears the
  ``relay_oidc*`` cookies and redirects to ``/ui/``. A refusal (wrong state, forged or
  expired token, no mapped role) raises :class:`SignInRefused`; the dashboard shows its
  message on the sign-in page with 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from relay.config.model import OidcConfig
from relay.ui.session import Session, SessionCodec

__all__ = [
    "OIDC_CALLBACK",
    "OIDC_COOKIE_PREFIX",
    "OIDC_LOGIN",
    "PREFIX",
    "OidcSignIn",
    "OidcSignInFactory",
]

PREFIX = "/ui"
OIDC_LOGIN = "/ui/oidc/login"
OIDC_CALLBACK = "/ui/oidc/callback"
# Cookies of an OIDC sign-in in progress start with this; cleared after the callback.
OIDC_COOKIE_PREFIX = "relay_oidc"


class OidcSignIn(Protocol):
    """The authorization code flow (state, nonce, PKCE) against ``ui.oidc``'s issuer."""

    async def begin(self, next_path: str) -> tuple[str, list[tuple[str, str]]]:
        """The provider's authorization URL to redirect to, and the ``set-cookie`` header
        pairs that carry the flow's state to the callback."""
        ...

    async def finish(self, query: str, cookies: Mapping[str, str]) -> tuple[Session, str]:
        """Check the callback (state, code exchanged, ID token verified, role mapped) and
        issue the session: the :class:`Session` and its cookie value (from
        ``SessionCodec.issue(actor, via="oidc")``). Raises ``relay.ui.oidc.SignInRefused``."""
        ...


class OidcSignInFactory(Protocol):
    """``relay.ui.oidc.OidcSignIn`` itself: built once per worker."""

    def __call__(self, settings: OidcConfig, codec: SessionCodec) -> OidcSignIn:
        """The sign-in for ``settings``, issuing sessions with ``codec``."""
        ...
