"""Helpers for the tenants and ledger tests: admin calls, a keys-mode config, ledger reads."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway

MASTER = "master-key-for-tests-0123456789"


def keys_config(up: FakeUpstream, database_url: str, **auth: Any) -> dict[str, Any]:
    """The fake-provider config in ``keys`` mode on ``database_url``, flushing the ledger fast."""
    config = upstream_config(up)
    config["auth"] = {"mode": "keys", "admin_key": MASTER, **auth}
    config["database"] = {"url": database_url, "ledger": {"flush_interval_s": 0.1}}
    return config


def call(
    gateway: Gateway,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = MASTER,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One HTTP call; returns the status and the decoded JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload) if payload else None


def ledger_entry(gateway: Gateway, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The ledger record of ``request_id`` (x-request-id), waiting for the writer to flush."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(gateway, "GET", f"/admin/requests/{request_id}")
        if status == 200:
            return dict(body)
        assert status == 404, body
        if time.monotonic() > deadline:
            raise AssertionError(f"request {request_id} never reached the ledger")
        time.sleep(0.05)
