"""Who may do what on the admin API: every route of the route table, by every kind of caller.

The matrix below must name every route of ``relay.admin.routes.ROUTES`` (a new route fails
the test until its row is written), and the callers every route must refuse (no key, a
made-up key, a revoked key, a tenant's key) are tried on every route of the table as it is.

Callers: the master key, an ``admin`` user and a ``user`` user, both of organisation
``acme``. Objects: ``acme``'s and ``globex``'s, and keys of users of ``acme`` (the user's own,
another user's, an admin's).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from relay.admin.routes import ROUTES
from relay.auth.tokens import new_key
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import MASTER, call, keys_config, ledger_entry

ACTORS = ("master", "admin", "user")
_names = itertools.count()


@dataclass
class World:
    """The objects the matrix acts on, and a way to make fresh ones for destructive calls."""

    gateway: Gateway
    keys: dict[str, str]  # actor -> its key
    users: dict[str, str]  # user name -> id ("user", "peer", "admin", "globex")
    tenants: dict[str, dict[str, Any]]  # org -> a tenant (with its key)
    requests: dict[str, str]  # org -> an x-request-id in the ledger

    def master(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, answer = call(self.gateway, method, path, body)
        assert status in (200, 201), (method, path, answer)
        return dict(answer)

    def fresh_tenant(self, org: str) -> dict[str, Any]:
        return self.master("POST", "/admin/tenants", {"name": name(), "organization": org})

    def fresh_user_key(self, user: str) -> str:
        return str(self.master("POST", "/admin/keys", {"user_id": self.users[user]})["id"])


def name() -> str:
    return f"obj-{next(_names)}"


Request = Callable[[World], tuple[str, Any]]  # -> (path, body)


@dataclass(frozen=True)
class Case:
    """One target of a route and the status each actor gets."""

    target: str
    request: Request
    master: int
    admin: int
    user: int


def same(target: str, request: Request, status: int) -> Case:
    """Every actor may."""
    return Case(target, request, status, status, status)


def admins(target: str, request: Request, status: int, user: int) -> Case:
    """Admins may; a ``user`` gets ``user`` (404: another organisation, 403: not allowed)."""
    return Case(target, request, status, status, user)


def tenant(org: str) -> Request:
    return lambda w: (f"/admin/tenants/{w.tenants[org]['id']}", {"budget_usd": 1})


def tenant_key(org: str) -> Request:
    return lambda w: (f"/admin/keys/{w.tenants[org]['key']['id']}", None)


MATRIX: dict[tuple[str, str], list[Case]] = {
    ("POST", "/admin/tenants"): [
        same("own organisation", lambda w: ("/admin/tenants", {"name": name(), "organization": "acme"}), 201),
        admins("other organisation", lambda w: ("/admin/tenants", {"name": name(), "organization": "globex"}), 201, 403),
    ],
    ("GET", "/admin/tenants"): [same("list", lambda w: ("/admin/tenants", None), 200)],
    ("GET", "/admin/tenants/{id}"): [
        same("own organisation", tenant("acme"), 200),
        admins("other organisation", tenant("globex"), 200, 404),
    ],
    ("PATCH", "/admin/tenants/{id}"): [
        same("own organisation", tenant("acme"), 200),
        admins("other organisation", tenant("globex"), 200, 404),
    ],
    ("DELETE", "/admin/tenants/{id}"): [
        same("own organisation", lambda w: (f"/admin/tenants/{w.fresh_tenant('acme')['id']}", None), 200),
        admins("other organisation", lambda w: (f"/admin/tenants/{w.fresh_tenant('globex')['id']}", None), 200, 404),
    ],
    ("POST", "/admin/keys"): [
        same("own organisation's tenant", lambda w: ("/admin/keys", {"tenant_id": w.tenants["acme"]["id"]}), 201),
        admins("other organisation's tenant", lambda w: ("/admin/keys", {"tenant_id": w.tenants["globex"]["id"]}), 201, 404),
        same("the user itself", lambda w: ("/admin/keys", {"user_id": w.users["user"]}), 201),
        admins("another user", lambda w: ("/admin/keys", {"user_id": w.users["peer"]}), 201, 403),
        admins("an admin", lambda w: ("/admin/keys", {"user_id": w.users["admin"]}), 201, 403),
        admins("other organisation's user", lambda w: ("/admin/keys", {"user_id": w.users["globex"]}), 201, 404),
    ],
    ("GET", "/admin/keys"): [same("list", lambda w: ("/admin/keys", None), 200)],
    ("GET", "/admin/keys/{id}"): [
        same("own organisation", tenant_key("acme"), 200),
        admins("other organisation", tenant_key("globex"), 200, 404),
    ],
    ("DELETE", "/admin/keys/{id}"): [
        same("own organisation's tenant key", lambda w: (f"/admin/keys/{w.fresh_tenant('acme')['key']['id']}", None), 200),
        admins("other organisation's tenant key", lambda w: (f"/admin/keys/{w.fresh_tenant('globex')['key']['id']}", None), 200, 404),
        same("the user's own key", lambda w: (f"/admin/keys/{w.fresh_user_key('user')}", None), 200),
        admins("another user's key", lambda w: (f"/admin/keys/{w.fresh_user_key('peer')}", None), 200, 403),
        admins("an admin's key", lambda w: (f"/admin/keys/{w.fresh_user_key('admin')}", None), 200, 403),
        admins("other organisation's user's key", lambda w: (f"/admin/keys/{w.fresh_user_key('globex')}", None), 200, 404),
    ],
    ("POST", "/admin/users"): [
        admins("own organisation", lambda w: ("/admin/users", {"name": name(), "organization": "acme"}), 201, 403),
        admins("other organisation", lambda w: ("/admin/users", {"name": name(), "organization": "globex"}), 201, 403),
    ],
    ("GET", "/admin/users"): [same("list", lambda w: ("/admin/users", None), 200)],
    ("GET", "/admin/usage"): [same("report", lambda w: ("/admin/usage?group_by=organization", None), 200)],
    ("GET", "/admin/requests"): [same("list", lambda w: ("/admin/requests", None), 200)],
    ("GET", "/admin/requests/{id}"): [
        same("own organisation", lambda w: (f"/admin/requests/{w.requests['acme']}", None), 200),
        admins("other organisation", lambda w: (f"/admin/requests/{w.requests['globex']}", None), 200, 404),
    ],
    ("GET", "/admin/audit"): [same("list", lambda w: ("/admin/audit", None), 200)],
    ("DELETE", "/admin/cache"): [admins("purge the cache", lambda w: ("/admin/cache", None), 200, 403)],
    ("GET", "/admin/openapi.json"): [same("document", lambda w: ("/admin/openapi.json", None), 200)],
}  # fmt: skip


def test_the_matrix_names_every_route_and_admin_only_routes_refuse_users() -> None:
    routes = {(r.method, r.path) for r in ROUTES}
    missing = sorted(routes - set(MATRIX))
    assert not missing, f"add these admin routes to the role matrix: {missing}"
    assert not set(MATRIX) - routes, "the matrix names routes that no longer exist"
    for route in ROUTES:
        if route.admin_only:
            assert all(c.user == 403 for c in MATRIX[(route.method, route.path)]), route.path


@pytest.fixture
def world(fake_upstream: FakeUpstream, database_url: str, tmp_path: Path) -> Iterator[World]:
    gateway = Gateway(keys_config(fake_upstream, database_url), tmp_path)
    try:
        w = World(gateway, {"master": MASTER}, {}, {}, {})
        for user, role, org in (
            ("user", "user", "acme"),
            ("peer", "user", "acme"),
            ("admin", "admin", "acme"),
            ("globex", "user", "globex"),
        ):
            made = w.master(
                "POST", "/admin/users", {"name": user, "role": role, "organization": org}
            )
            w.users[user] = made["id"]
            if user in ACTORS:
                w.keys[user] = made["api_key"]
        for org in ("acme", "globex"):
            w.tenants[org] = w.fresh_tenant(org)
            client = openai.OpenAI(
                base_url=gateway.base_url, api_key=w.tenants[org]["api_key"], max_retries=0
            )
            w.requests[org] = f"matrix-{org}"
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-request-id": w.requests[org]},
            )
            ledger_entry(gateway, w.requests[org])
        yield w
    finally:
        gateway.stop()


def test_every_route_by_every_role(world: World) -> None:
    seen = []
    for (method, _), cases in MATRIX.items():
        for case in cases:
            for actor in ACTORS:
                path, body = case.request(world)
                status, answer = call(world.gateway, method, path, body, key=world.keys[actor])
                want = getattr(case, actor)
                seen.append((method, path, case.target, actor, status, want))
                assert status == want, (method, path, case.target, actor, answer)
                if status == 200 and actor == "user" and isinstance(answer.get("data"), list):
                    # A user's listings hold its organisation's objects only.
                    orgs = {row["organization"] for row in answer["data"] if "organization" in row}
                    assert orgs <= {"acme"}, (path, orgs)
    assert len(seen) == 3 * sum(len(cases) for cases in MATRIX.values())


def test_every_route_refuses_callers_without_a_live_user_key(world: World) -> None:
    """Generated from the route table as it is: no key, a made-up key, a revoked user key:
    401; a tenant's (service) key: 403."""
    revoked = world.master("POST", "/admin/keys", {"user_id": world.users["user"]})
    world.master("DELETE", f"/admin/keys/{revoked['id']}")
    refused = {
        None: 401,
        new_key(): 401,
        "gw-sk-made-up": 401,
        revoked["api_key"]: 401,
        world.tenants["acme"]["api_key"]: 403,
    }
    for route in ROUTES:
        path = route.path.replace("{id}", "x")
        for key, want in refused.items():
            status, answer = call(world.gateway, route.method, path, {}, key=key)
            assert status == want, (route.method, path, key and key[:14], answer)
