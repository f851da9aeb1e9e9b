"""A worker under ``relay serve`` swaps in what the main process publishes: only a new
version, built on the state of the app it replaces."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec

from relay.config import parse_config
from relay.live import LiveApp

TEXT = """
providers: {e: {kind: echo}}
models: {m: {provider: e, cache: {mode: all}}}
database: {url: none}
ratelimit: {enabled: true}
"""


def publish(path: Path, text: str) -> None:
    """As the main process does: a new file renamed over the old one."""
    staged = path.with_name(".staged")
    staged.write_bytes(msgspec.json.encode(parse_config(text, "c.yaml", {})))
    os.replace(staged, path)


def test_only_a_new_version_is_swapped_in_on_the_old_state(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    publish(path, TEXT)
    live = LiveApp(path)
    first = live.app

    async def scenario() -> None:
        assert not await live.check()  # nothing published
        publish(path, TEXT)  # the same configuration again: a new file, the same version
        assert not await live.check() and live.app is first
        publish(path, TEXT + "server: {body_timeout_s: 5}\n")
        assert await live.check()
        second = live.app
        assert second is not first and second.config.server.body_timeout_s == 5
        assert second.version.hash != first.version.hash
        for part in ("pool", "tenancy", "inflight", "limit_store", "metrics", "cache"):
            assert getattr(second, part) is getattr(first, part), part
        assert second.router.breakers is first.router.breakers
        # New cache settings: a new cache; the old one is closed once its requests are done.
        publish(path, TEXT + "cache: {ttl_s: 5}\n")
        assert await live.check()
        assert live.app.cache is not None and live.app.cache is not first.cache
        assert first.cache in live._retired
        for task in live._retired.values():
            task.cancel()

    asyncio.run(scenario())
