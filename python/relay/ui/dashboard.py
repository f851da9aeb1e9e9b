"""The dashboard at ``/ui``: sign-in, sessions and CSRF, and each page's dispatch.

Every read and change goes through the admin API's own operations (``AdminApi.run``) as the
signed-in actor, so the dashboard has the API's access rules by construction: a ``user``
sees its organisation only, and an admin-only operation answers 403 here as there. Database
work runs where the admin API runs it (SQLite on its own thread, asyncpg's pool).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

from relay.admin.access import Actor
from relay.admin.api import AdminApi
from relay.config.model import UiConfig
from relay.errors import GatewayError
from relay.ledger.database import DatabaseUnavailable
from relay.ui import forms, views
from relay.ui.render import Renderer
from relay.ui.routes import OIDC_CALLBACK, OIDC_COOKIE_PREFIX, OIDC_LOGIN, OidcSignIn
from relay.ui.session import COOKIE, Session, SessionCodec
from relay.ui.web import UiRequest, UiResponse, redirect, safe_next, set_cookie

log = logging.getLogger("relay.ui")

# The sign-in form's CSRF cookie (before there is a session).
PRE_COOKIE = "relay_signin"
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".svg": "image/svg+xml"}  # fmt: skip
_NOBODY = Actor("anonymous", "none")

Page = Callable[[UiRequest, Session], Awaitable[UiResponse]]


def session_secret(config: UiConfig, admin_key: str | None) -> bytes:
    """``ui.session_secret`` (or RELAY_UI_SECRET); else derived from the admin key; else
    random for this process (sessions then end with a restart)."""
    if config.session_secret:
        return config.session_secret.encode()
    if admin_key:
        return hashlib.sha256(b"relay-ui-secret\x00" + admin_key.encode()).digest()
    return secrets.token_bytes(32)


def load_oidc(config: UiConfig, codec: SessionCodec) -> OidcSignIn | None:
    """``relay.ui.oidc.OidcSignIn`` for ``ui.oidc``, when both are there."""
    if config.oidc is None:
        return None
    if importlib.util.find_spec("relay.ui.oidc") is None:
        log.warning("ui.oidc is set but this build has no OIDC sign-in (relay.ui.oidc)")
        return None
    module = importlib.import_module("relay.ui.oidc")
    sign_in: OidcSignIn = module.OidcSignIn(config.oidc, codec)
    return sign_in


class Dashboard:
    """Answers every ``/ui`` request of one worker."""

    def __init__(self, admin: AdminApi, config: UiConfig, admin_key: str | None) -> None:
        self.admin = admin
        self.codec = SessionCodec(session_secret(config, admin_key), config.session_hours * 3600)
        self.oidc = load_oidc(config, self.codec)
        self.render = Renderer(sso=self.oidc is not None)
        self.static = {
            f.name: f.read_bytes()
            for f in resources.files("relay.ui").joinpath("static").iterdir()
            if f.is_file()
        }
        # GET pages and POST actions of a signed-in user, by path.
        self.pages: dict[str, Page] = {
            "/ui/": self.overview,
            "/ui/usage": self.usage,
            "/ui/requests": self.requests,
            "/ui/keys": self.keys,
            "/ui/tenants": self.tenants,
            "/ui/users": self.users,
            "/ui/audit": self.audit,
        }
        self.actions: dict[str, Page] = {
            "/ui/keys": self.create_key,
            "/ui/tenants": self.create_tenant,
            "/ui/users": self.create_user,
            "/ui/logout": self.logout,
        }

    async def handle(self, req: UiRequest) -> UiResponse:
        """One request -> the answer (security headers are added by the caller)."""
        try:
            return await self._dispatch(req)
        except DatabaseUnavailable as exc:
            log.warning("dashboard request failed: %s", exc)
            return self.render.error(503, "The database is unavailable; retry shortly.")
        except Exception:
            log.exception("dashboard request failed: %s %s", req.method, req.path)
            return self.render.error(500, "The dashboard failed; see the gateway's logs.")

    async def _dispatch(self, req: UiRequest) -> UiResponse:
        path = req.path
        if path == "/ui":
            return redirect("/ui/")
        if path.startswith("/ui/static/"):
            return self._static(path.removeprefix("/ui/static/"))
        if path == "/ui/login":
            return await (self.sign_in(req) if req.method == "POST" else self.sign_in_form(req))
        if path in (OIDC_LOGIN, OIDC_CALLBACK) and req.method == "GET":
            return await self._oidc(req)
        session = self.codec.read(req.cookies.get(COOKIE))
        if req.method in ("GET", "HEAD"):
            page = self.pages.get(path)
            if page is None and path.startswith("/ui/requests/"):
                page = self.request_detail
            if page is None:
                return self.render.error(404, f"No page at {path}.")
            if session is None:
                return redirect("/ui/login?next=" + quote(path + ("?" + req.query if req.query else ""), safe="/"))
            return await self._guard(page, req, session)
        if req.method != "POST":
            return self.render.error(405, f"{req.method} is not allowed here.")
        action = self.actions.get(path)
        if action is None and path.startswith("/ui/keys/") and path.endswith("/revoke"):
            action = self.revoke_key
        if action is None:
            return self.render.error(404, f"No action at {path}.")
        if session is None:
            return self.render.error(401, "Your session has ended; sign in again.", signed_out=True)
        if not self.codec.csrf_ok(session, req.form().get("csrf")):
            return self.render.error(403, "This form's CSRF token is missing or wrong; reload the page and try again.")
        return await self._guard(action, req, session)

    async def _guard(self, page: Page, req: UiRequest, session: Session) -> UiResponse:
        """Run a page; the admin API's refusals become an error page with their status."""
        try:
            return await page(req, session)
        except GatewayError as err:
            return self.render.error(err.status, err.message, session=session, csrf=self.codec.csrf_token(session))

    def _static(self, name: str) -> UiResponse:
        data = self.static.get(name)
        kind = _STATIC_TYPES.get(name[name.rfind("."):]) if "." in name else None
        if data is None or kind is None:
            return self.render.error(404, "No such file.")
        return UiResponse(200, data, kind, [("cache-control", "public, max-age=3600")])

    def _page(self, template: str, session: Session, status: int = 200, **context: Any) -> UiResponse:
        return self.render.page(template, status, session=session, csrf=self.codec.csrf_token(session), **context)

    # -- sign-in ----------------------------------------------------------------------------
    def _pre_session(self, req: UiRequest) -> tuple[Session, list[tuple[str, str]]]:
        """The sign-in form's own CSRF session: a random value in a cookie (double submit)."""
        value = req.cookies.get(PRE_COOKIE, "")
        headers: list[tuple[str, str]] = []
        if len(value) < 16 or not value.replace("-", "").replace("_", "").isalnum():
            value = secrets.token_urlsafe(16)
            headers.append(set_cookie(PRE_COOKIE, value, secure=req.secure_cookies, max_age=3600, path="/ui/login"))
        return Session(_NOBODY, time.time() + 3600, value), headers

    async def sign_in_form(
        self, req: UiRequest, status: int = 200, message: str | None = None
    ) -> UiResponse:
        """The sign-in page: a key field, and "Sign in with SSO" when OIDC is set."""
        pre, cookies = self._pre_session(req)
        response = self.render.page(
            "login.html", status, session=None, csrf=self.codec.csrf_token(pre),
            next=safe_next(req.params.get("next")), message=message,
        )  # fmt: skip
        response.headers.extend(cookies)
        return response

    async def sign_in(self, req: UiRequest) -> UiResponse:
        """The key form posted: the admin key or a user's key, checked as the admin API does."""
        form = req.form()
        pre, _ = self._pre_session(req)
        if PRE_COOKIE not in req.cookies or not self.codec.csrf_ok(pre, form.get("csrf")):
            return await self.sign_in_form(req, 403, "This form's CSRF token is missing or wrong; try again.")
        key = form.get("key", "")
        try:
            actor = await self.admin.authenticate({"authorization": f"Bearer {key}"})
        except GatewayError as err:
            log.info("dashboard sign-in refused: %s", err.message)
            return await self.sign_in_form(req, err.status, err.message)
        _, cookie = self.codec.issue(actor, via="key")
        return redirect(safe_next(form.get("next")), self._session_cookie(req, cookie))

    def _session_cookie(self, req: UiRequest, cookie: str) -> tuple[str, str]:
        return set_cookie(COOKIE, cookie, secure=req.secure_cookies, max_age=int(self.codec.lifetime_s))

    async def logout(self, req: UiRequest, session: Session) -> UiResponse:
        """End the session: the cookie is deleted (a copy of it still expires on time)."""
        return redirect("/ui/login", set_cookie(COOKIE, "", secure=req.secure_cookies, max_age=0))

    async def _oidc(self, req: UiRequest) -> UiResponse:
        if self.oidc is None:
            return self.render.error(404, "Single sign-on is not configured (ui.oidc).")
        from relay.ui.oidc import SignInRefused  # type: ignore[import-not-found, unused-ignore]

        try:
            if req.path == OIDC_LOGIN:
                url, cookies = await self.oidc.begin(safe_next(req.params.get("next")))
                return redirect(url, *cookies)
            _, cookie = await self.oidc.finish(req.query, req.cookies)
        except SignInRefused as refused:
            log.info("dashboard SSO sign-in refused: %s", refused)
            return await self.sign_in_form(req, 403, str(refused))
        clear = [
            set_cookie(name, "", secure=req.secure_cookies, max_age=0, path="/ui/oidc")
            for name in req.cookies
            if name.startswith(OIDC_COOKIE_PREFIX)
        ]
        return redirect("/ui/", self._session_cookie(req, cookie), *clear)

    # -- pages ------------------------------------------------------------------------------
    async def overview(self, req: UiRequest, session: Session) -> UiResponse:
        """Today, this month, the leaders, the projection and the budgets."""
        data = await views.overview(self.admin, session.actor)
        return self._page("overview.html", session, nav="overview", **data)

    async def usage(self, req: UiRequest, session: Session) -> UiResponse:
        """Usage and cost per day by tenant, model or key."""
        data = await views.usage(self.admin, session.actor, req.params)
        return self._page("usage.html", session, nav="usage", **data)

    async def requests(self, req: UiRequest, session: Session) -> UiResponse:
        """The request log; ``partial=1`` answers the rows only (the page's script swaps
        them in when a filter changes or the log refreshes)."""
        params = req.params
        try:
            data = await views.request_log(self.admin, session.actor, params)
        except GatewayError as err:
            if err.status != 400:
                raise
            data = {"page": None, "filters": params, "more": None, "message": err.message}
        template = "request_rows.html" if params.get("partial") else "requests.html"
        status = 400 if data.get("message") else 200
        return self._page(template, session, status, nav="requests", **data)

    async def request_detail(self, req: UiRequest, session: Session) -> UiResponse:
        """One request and its attempts."""
        rid = req.path.removeprefix("/ui/requests/")
        if "/" in rid:
            return self.render.error(404, f"No page at {req.path}.")
        record = await views.get(self.admin, session.actor, f"/admin/requests/{rid}")
        return self._page("request.html", session, nav="requests", record=record)

    async def keys(self, req: UiRequest, session: Session, created: Any = None) -> UiResponse:
        """Keys by prefix (never a secret), the create form, revoke buttons."""
        actor = session.actor
        keys = (await views.get(self.admin, actor, "/admin/keys", tenant_id=req.params.get("tenant_id"))).data
        prefix = req.params.get("prefix", "")
        if prefix:
            keys = [k for k in keys if k.prefix.startswith(prefix)]
        tenants = (await views.get(self.admin, actor, "/admin/tenants")).data
        users = (await views.get(self.admin, actor, "/admin/users")).data
        names = {t.id: f"{t.organization}/{t.name}" for t in tenants}
        users_by_id = {u.id: f"{u.organization}/{u.name}" for u in users}
        return self._page("keys.html", session, nav="keys", keys=keys, tenants=tenants, users=users,
                          tenant_names=names, user_names=users_by_id, prefix=prefix, now=time.time())  # fmt: skip

    async def tenants(self, req: UiRequest, session: Session) -> UiResponse:
        """Tenants with their limits and budgets; the create form."""
        tenants = (await views.get(self.admin, session.actor, "/admin/tenants")).data
        return self._page("tenants.html", session, nav="tenants", tenants=tenants)

    async def users(self, req: UiRequest, session: Session) -> UiResponse:
        """Users and their roles; the create form for admins."""
        users = (await views.get(self.admin, session.actor, "/admin/users")).data
        return self._page("users.html", session, nav="users", users=users)

    async def audit(self, req: UiRequest, session: Session) -> UiResponse:
        """The audit log, newest first."""
        page = await views.get(self.admin, session.actor, "/admin/audit", limit=100, cursor=req.params.get("cursor"))
        return self._page("audit.html", session, nav="audit", page=page)

    # -- actions ----------------------------------------------------------------------------
    async def _post(self, session: Session, path: str, body: bytes) -> Any:
        _, result = await self.admin.run(session.actor, "POST", path, "", body)
        return result

    async def create_key(self, req: UiRequest, session: Session) -> UiResponse:
        """Create a key; its secret is shown on this answer only."""
        form = req.form()
        if form.get("owner", "").startswith("user:"):
            form["user_id"] = form["owner"].removeprefix("user:")
        elif form.get("owner", "").startswith("tenant:"):
            form["tenant_id"] = form["owner"].removeprefix("tenant:")
        created = await self._post(session, "/admin/keys", forms.body(form, forms.KEY_FIELDS))
        return self._created(session, "key", created.api_key, created.prefix, "/ui/keys")

    async def create_tenant(self, req: UiRequest, session: Session) -> UiResponse:
        """Create a tenant and its first key (shown once)."""
        created = await self._post(session, "/admin/tenants", forms.body(req.form(), forms.TENANT_FIELDS))
        return self._created(session, "tenant", created.api_key, created.name, "/ui/tenants")

    async def create_user(self, req: UiRequest, session: Session) -> UiResponse:
        """Create a user and its first key (admins only: the admin API refuses others)."""
        created = await self._post(session, "/admin/users", forms.body(req.form(), forms.USER_FIELDS))
        return self._created(session, "user", created.api_key, created.name, "/ui/users")

    def _created(self, session: Session, kind: str, secret: str, name: str, back: str) -> UiResponse:
        # The one answer that carries a secret; like every page, sent with no-store.
        return self._page("created.html", session, 201, nav=kind + "s", kind=kind, secret=secret, name=name, back=back)

    async def revoke_key(self, req: UiRequest, session: Session) -> UiResponse:
        """Revoke a key; back to the list."""
        kid = req.path.removeprefix("/ui/keys/").removesuffix("/revoke")
        if "/" in kid:
            return self.render.error(404, f"No action at {req.path}.")
        await self.admin.run(session.actor, "DELETE", f"/admin/keys/{kid}", "", b"")
        return redirect("/ui/keys")
