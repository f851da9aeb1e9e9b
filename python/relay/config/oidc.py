"""Checks of ``ui.oidc`` (dashboard sign-in through OpenID Connect) that a type cannot express:
URLs a browser and the gateway can use safely, a callback the dashboard serves, the ``openid``
scope, a tenant-specific Entra ID issuer, and the ``sso`` extra installed."""

from __future__ import annotations

from urllib.parse import urlsplit

from relay.config.model import Config
from relay.config.problems import Problems, importable

# Modules the ``sso`` extra installs (relay.ui.oidc imports them).
SSO_MODULES = ("authlib", "joserfc")
CALLBACK_PATH = "/ui/oidc/callback"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
# Entra ID's multi-tenant endpoints: their discovery names a "{tenantid}" template, not an
# issuer a token can be checked against, and they would let any tenant's users in.
_ENTRA_SHARED = ("common", "organizations", "consumers")


def check_oidc(config: Config, problems: Problems) -> None:
    """Append the problems of ``ui.oidc``, if it is configured."""
    oidc = config.ui.oidc
    if oidc is None:
        return
    path = "ui.oidc"
    issuer = urlsplit(oidc.issuer)
    if not _secure(oidc.issuer) or issuer.query or issuer.fragment:
        problems.add(
            f"{path}.issuer",
            "expected the issuer's https URL (http only on localhost), without query or "
            f"fragment, got {oidc.issuer!r}",
        )
    elif (issuer.hostname or "").endswith("login.microsoftonline.com"):
        tenant = issuer.path.strip("/").split("/")[0]
        if tenant in _ENTRA_SHARED:
            problems.add(
                f"{path}.issuer",
                f"'{tenant}' is Entra ID's multi-tenant endpoint: use your tenant's issuer, "
                "https://login.microsoftonline.com/<tenant id>/v2.0",
            )
    if not oidc.client_id.strip():
        problems.add(f"{path}.client_id", "expected the client (application) id")
    redirect = urlsplit(oidc.redirect_uri)
    if not oidc.redirect_uri:
        problems.add(
            f"{path}.redirect_uri",
            f"expected the callback URL registered with the provider, "
            f"e.g. https://relay.example.com{CALLBACK_PATH}",
        )
    elif not _secure(oidc.redirect_uri) or redirect.query or redirect.fragment:
        problems.add(
            f"{path}.redirect_uri",
            "expected an https URL (http only on localhost) without query or fragment, "
            f"got {oidc.redirect_uri!r}",
        )
    elif not redirect.path.endswith(CALLBACK_PATH):
        problems.add(
            f"{path}.redirect_uri",
            f"expected the dashboard's callback, a URL ending in {CALLBACK_PATH}, "
            f"got {oidc.redirect_uri!r}",
        )
    if "openid" not in oidc.scopes:
        problems.add(f"{path}.scopes", f"expected 'openid' among the scopes, got {oidc.scopes}")
    if not oidc.role_claim.strip():
        problems.add(f"{path}.role_claim", "expected the name of a claim (roles, groups)")
    for field, groups in (("admin_groups", oidc.admin_groups), ("user_groups", oidc.user_groups)):
        if any(not group.strip() for group in groups):
            problems.add(f"{path}.{field}", "expected non-empty group ids or role names")
    if oidc.org_claim is not None and not oidc.org_claim.strip():
        problems.add(f"{path}.org_claim", "expected the name of a claim, or leave it out")
    processes = config.server.workers * max(config.limits.replicas, 1)
    if processes > 1 and not config.ui.session_secret and not config.auth.admin_key:
        # Without either, each worker signs with a random key of its own: a sign-in started
        # on one worker and called back on another would be refused.
        problems.add(
            "ui.session_secret",
            f"OIDC sign-in on {processes} workers or replicas needs one session secret they "
            "share: set ui.session_secret (or RELAY_UI_SECRET)",
        )
    missing = [m for m in SSO_MODULES if not importable(m)]
    if missing:
        problems.add(
            path,
            f"OIDC sign-in needs {', '.join(missing)} (not installed): "
            "pip install 'relay-gateway[sso]'",
        )


def _secure(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in _LOOPBACK
