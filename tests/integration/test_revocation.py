"""A key works on every worker the moment the admin API returns it; revoked through one
worker, it stops working on every worker within 2 seconds."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import call, keys_config

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def status_with(gateway: Gateway, key: str) -> int:
    # A new connection each time, so requests spread over the workers.
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request(
        "POST", "/v1/chat/completions", body=BODY, headers={"authorization": f"Bearer {key}"}
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def test_revocation_reaches_both_workers_within_two_seconds(
    fake_upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    gateway = Gateway(keys_config(fake_upstream, database_url), tmp_path, workers=2)
    try:
        status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "revoke-me"})
        assert status == 201
        key = tenant["api_key"]
        assert [status_with(gateway, key) for _ in range(20)] == [200] * 20

        status, _ = call(gateway, "DELETE", f"/admin/keys/{tenant['key']['id']}")
        assert status == 200
        revoked_at = time.monotonic()
        last_ok = None
        statuses = []
        while time.monotonic() - revoked_at < 3.0:
            code = status_with(gateway, key)
            statuses.append(code)
            if code == 200:
                last_ok = time.monotonic()
            else:
                assert code == 401
            time.sleep(0.01)
        assert len(statuses) > 50
        assert last_ok is None or last_ok - revoked_at < 2.0, (
            f"key worked {last_ok - revoked_at:.2f}s after revocation"
        )
        assert statuses[-20:] == [401] * 20
    finally:
        gateway.stop()


def test_a_new_key_works_on_every_worker_at_once(
    fake_upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    """No worker refuses a key it has not polled yet: each of the first requests with a key
    just returned (a tenant's, and a user's on the admin API) succeeds, whichever worker
    answers. The longest poll interval makes the window before the fix as wide as it gets."""
    config = keys_config(fake_upstream, database_url, key_refresh_s=1.5)
    gateway = Gateway(config, tmp_path, workers=2)
    try:
        for n in range(3):
            status, tenant = call(gateway, "POST", "/admin/tenants", {"name": f"new-{n}"})
            assert status == 201
            statuses = [status_with(gateway, tenant["api_key"]) for _ in range(10)]
            assert statuses == [200] * 10, statuses
            status, user = call(gateway, "POST", "/admin/users", {"name": f"user-{n}"})
            assert status == 201
            statuses = [
                call(gateway, "GET", "/admin/tenants", key=user["api_key"])[0] for _ in range(10)
            ]
            assert statuses == [200] * 10, statuses
    finally:
        gateway.stop()
