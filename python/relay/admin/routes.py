"""The admin API's route table: one list read by the dispatcher and by the OpenAPI generator."""

from __future__ import annotations

from dataclasses import dataclass

from relay.admin import models as m


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: method, path pattern (``{id}`` segments), handler name, schemas, docs."""

    method: str
    path: str
    handler: str
    summary: str
    body: type | None = None
    response: type | None = None
    status: int = 200
    query: tuple[tuple[str, str], ...] = ()
    admin_only: bool = False

    def match(self, method: str, parts: list[str]) -> str | bool | None:
        """False if no match; else the ``{id}`` value (or None when the path has none)."""
        if method != self.method:
            return False
        pattern = self.path.strip("/").split("/")
        if len(pattern) != len(parts):
            return False
        found: str | None = None
        for want, got in zip(pattern, parts, strict=True):
            if want == "{id}":
                found = got
            elif want != got:
                return False
        return found


_PAGE = (
    ("limit", "page size, 1-1000 (default 50)"),
    ("cursor", "next_cursor of the previous page"),
)

ROUTES: tuple[Route, ...] = (
    Route("POST", "/admin/tenants", "create_tenant", "Create a tenant and its first key",
          m.TenantCreate, m.TenantCreated, 201),
    Route("GET", "/admin/tenants", "list_tenants", "List tenants", response=m.TenantList),
    Route("GET", "/admin/tenants/{id}", "get_tenant", "Get a tenant", response=m.Tenant),
    Route("PATCH", "/admin/tenants/{id}", "update_tenant", "Change a tenant's limits or models",
          m.TenantUpdate, m.Tenant),
    Route("DELETE", "/admin/tenants/{id}", "delete_tenant",
          "Delete a tenant and revoke its keys", response=m.Tenant),
    Route("POST", "/admin/keys", "create_key", "Create a key for a tenant or a user",
          m.KeyCreate, m.KeyCreated, 201),
    Route("GET", "/admin/keys", "list_keys", "List keys (never the secrets)",
          response=m.KeyList, query=(("tenant_id", "only this tenant's keys"),)),
    Route("GET", "/admin/keys/{id}", "get_key", "Get a key", response=m.Key),
    Route("DELETE", "/admin/keys/{id}", "revoke_key", "Revoke a key", response=m.Key),
    Route("POST", "/admin/users", "create_user", "Create a user and its key (admins only)",
          m.UserCreate, m.UserCreated, 201, admin_only=True),
    Route("GET", "/admin/users", "list_users", "List users", response=m.UserList),
    Route("GET", "/admin/usage", "usage", "Tokens, requests and cost per UTC day",
          response=m.UsageReport, query=(
              ("start", "first day, YYYY-MM-DD (default: 29 days before end)"),
              ("end", "last day, YYYY-MM-DD, inclusive (default: today, UTC)"),
              ("group_by", "comma-separated: organization, tenant, key, model, day "
                           "(default: tenant,model,day)"),
              ("tenant", "only this tenant"), ("model", "only this public model"),
              ("organization", "only this organization (admins)"),
          )),
    Route("GET", "/admin/requests", "list_requests", "The request ledger, newest first",
          response=m.RequestPage, query=(*_PAGE,
              ("tenant", "tenant name"), ("model", "public model"), ("status", "HTTP status"),
              ("key_prefix", "gw-sk-XXXXXXXX"), ("use_case", "metadata.use_case"),
              ("organization", "organization (admins)"),
              ("since", "ISO 8601 time or epoch seconds, inclusive"),
              ("until", "ISO 8601 time or epoch seconds, exclusive"),
          )),
    Route("GET", "/admin/requests/{id}", "get_request",
          "One request (ledger id or x-request-id) with its provider attempts",
          response=m.RequestRecord),
    Route("GET", "/admin/audit", "audit", "The audit log of admin changes, newest first",
          response=m.AuditPage, query=(*_PAGE, ("organization", "organization (admins)"))),
    Route("DELETE", "/admin/cache", "purge_cache",
          "Purge the response cache on every worker: all of it, a tenant's or a model's",
          response=m.CachePurged, admin_only=True, query=(
              ("tenant", "only this tenant's entries"),
              ("organization", "the tenant's organization (default: default)"),
              ("model", "only this public model's entries"),
          )),
    Route("GET", "/admin/openapi.json", "openapi", "This document"),
)  # fmt: skip
