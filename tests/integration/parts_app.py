"""The real gateway composed with a test's own parts, through the contracts in ``stage.py``.

Served by granian as a factory (``Gateway(app="parts_app:create_app")``); the parts are chosen
by ``RELAY_TEST_PARTS`` (comma-separated names below), the configuration comes from
``RELAY_CONFIG``. Everything else is the production app.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from relay.app import Extensions, RelayApp
from relay.config import load_config
from relay.errors import GatewayError
from relay.exchange import Exchange
from relay.obs.log import configure_logging
from relay.stage import Reply


class Refuse:
    """A policy stage: refuses any request that sends ``x-test-refuse``."""

    async def __call__(self, ex: Exchange) -> Reply | None:
        if ex.headers.get("x-test-refuse"):
            raise GatewayError("refused by the test stage", status=429, code="test_refused")
        return None


class Shout:
    """Transforms answers: ``Echo:`` becomes ``ECHO:`` in JSON answers and in each stream
    event; counts the events it saw in the exchange's state and reports them in a header of
    the next stage's choosing (here: the last event gets a comment frame with the count)."""

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        return body.replace(b"Echo:", b"ECHO:")

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        seen = ex.state_of(self, lambda: [0])
        seen[0] += 1
        return event.replace(b"Echo:", b"ECHO:")

    def on_end(self, ex: Exchange) -> bytes:
        seen = ex.state_of(self, lambda: [0])
        return f": events seen by the hook {seen[0]}\n\n".encode()


class HoldAll:
    """Holds every event back and sends them all at the end of the stream."""

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        ex.state_of(self, list).append(event)
        return b""

    def on_end(self, ex: Exchange) -> bytes:
        return b"".join(ex.state_of(self, list))


class WaitingSettler:
    """Settles only once the file ``$RELAY_TEST_RELEASE`` exists, then appends the request's
    id to ``$RELAY_TEST_SETTLED``: proves the client never waits for a settler."""

    def __init__(self) -> None:
        self.release = Path(os.environ["RELAY_TEST_RELEASE"])
        self.settled = Path(os.environ["RELAY_TEST_SETTLED"])

    async def settle(self, ex: Exchange) -> None:
        # Another process makes the file: no event to wait on.
        while not self.release.exists():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        with self.settled.open("a") as out:
            out.write(f"{ex.request_id} {ex.status} {ex.cost_usd}\n")


class Hang:
    """A settler that never finishes (abandoned after ``server.settle_timeout_s``)."""

    async def settle(self, ex: Exchange) -> None:
        await asyncio.Event().wait()


def create_app() -> RelayApp:
    """granian's factory."""
    config = load_config()
    configure_logging(config.server.log_level, config.server.log_format)
    parts = set(filter(None, os.environ.get("RELAY_TEST_PARTS", "").split(",")))
    shout, hold = Shout(), HoldAll()
    return RelayApp(
        config,
        Extensions(
            stages=(Refuse(),) if "refuse" in parts else (),
            answer_hooks=(shout,) if "shout" in parts else (),
            stream_hooks=((hold,) if "hold" in parts else ())
            + ((shout,) if "shout" in parts else ()),
            settlers=((WaitingSettler(),) if "wait" in parts else ())
            + ((Hang(),) if "hang" in parts else ()),
        ),
    )
