"""GET /admin/config in front of the admin API: admins only, the body made once."""

from __future__ import annotations

import asyncio

import msgspec

from relay.admin.config import ConfigAdmin
from relay.config import parse_config
from relay.config.version import ConfigVersion
from relay.tenancy import NoAdminApi

KEY = "admin-key-0123456789abcdef"
TEXT = f"""
providers: {{o: {{kind: openai, base_url: "http://h/v1", api_key: sk-canary}}}}
models: {{m: {{provider: o}}}}
auth: {{admin_key: {KEY}}}
database: {{url: none}}
"""


def test_without_a_database_the_master_key_reads_it() -> None:
    config = parse_config(TEXT, "c.yaml", {})
    version = ConfigVersion.of(config, applied_at=0.0)
    admin = ConfigAdmin(NoAdminApi(), config, version, KEY)

    def get(path: str, key: str | None, method: str = "GET") -> tuple[int, bytes]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        status, _, body = asyncio.run(admin.handle(method, path, "", headers, b""))
        return status, body

    status, body = get("/admin/config", KEY)
    assert status == 200 and b"sk-canary" not in body and KEY.encode() not in body
    shown = msgspec.json.decode(body)
    assert shown["version"] == {"hash": version.hash, "applied_at": "1970-01-01T00:00:00.000Z"}
    assert shown["config"]["providers"]["o"]["api_key"] == "[redacted]"
    assert get("/admin/config", "wrong-key-0123456789")[0] == 401
    assert get("/admin/config", None)[0] == 401
    assert get("/admin/config", KEY, "DELETE")[0] == 405
    # Everything else goes on to the API it wraps (here: no database, 404).
    assert get("/admin/tenants", KEY)[0] == 404
