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
    # Keys mode refuses providers that forward the caller's credential (it is a gateway key).
    forwarding = {n for n, p in config["providers"].items() if p.get("forward_client_auth")}
    for name in forwarding:
        del config["providers"][name]
    config["models"] = {
        n: m for n, m in config["models"].items() if m.get("provider") not in forwarding
    }
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
    rid: str | None = None,
) -> tuple[int, Any]:
    """One HTTP call (``rid``: its x-request-id); returns the status and the decoded JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    headers = {"content-type": "application/json"}
    if rid is not None:
        headers["x-request-id"] = rid
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


def ledger_request_ids(database_url: str) -> list[str]:
    """Every x-request-id in the ledger, read straight from the database."""
    return [r[0] for r in read_rows(database_url, "SELECT request_id FROM requests")]


def read_rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one query (no parameters), read straight from the database."""
    if database_url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            return list(conn.execute(sql))
        finally:
            conn.close()
    import asyncio

    import asyncpg

    async def read() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(read())


class Load:
    """Threads sending chat requests with their own x-request-ids until stopped; records
    the ids of the requests that got an HTTP response, whatever its status."""

    def __init__(
        self, gateway: Gateway, key: str | None, threads: int = 6, model: str = "gpt-4o-mini"
    ) -> None:
        import threading

        self.gateway, self.key, self.model = gateway, key, model
        self.answered: dict[str, int] = {}
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, index: int) -> None:
        n = 0
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": "hi"}]})
        while not self._stop.is_set():
            n += 1
            rid = f"load-{index}-{n}"
            headers = {"content-type": "application/json", "x-request-id": rid}
            if self.key:
                headers["authorization"] = f"Bearer {self.key}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
                conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
            except OSError:
                with self._lock:
                    self.failed += 1
                time.sleep(0.01)
                continue
            with self._lock:
                self.answered[rid] = response.status

    def stop(self) -> dict[str, int]:
        """Stop and return x-request-id -> status of every answered request."""
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        return dict(self.answered)
