"""granian's RSGI objects in memory, for driving the real app in process: a request's scope,
and the protocol object with its body, disconnect signal and response writers (what was
answered is kept on it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Scope:
    """A request's scope, as far as the gateway reads it."""

    path: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    query_string: str = ""
    proto: str = "http"
    http_version: str = "1.1"
    client: str = "127.0.0.1:50000"


class Proto:
    """What granian hands an RSGI app: the body, a disconnect signal, the response writers."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.sent: list[bytes] = []

    async def __call__(self) -> bytes:
        return self.body

    def client_disconnect(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers = status, headers
        self.sent.append(body)

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Proto:
        self.status, self.headers = status, headers
        return self

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)
