"""Hot reload in a granian worker: the app ``relay serve`` has granian serve.

:class:`LiveApp` holds the worker's current :class:`~relay.app.RelayApp` and hands each
request to it; a request reads that reference once, so it runs to its end (a stream to its
last event) on the configuration it started with, while requests that arrive after a swap
run on the new one. Nothing else on the request path changes: the check for a new
configuration is a timer of the worker's event loop (:data:`POLL_S`), not a test per request.

**How a new configuration arrives.** The main process validates it and replaces the file
workers start from (:mod:`relay.config.handoff`, an atomic rename), forked and spawned workers
alike knowing its path. Every :data:`POLL_S` each worker compares the file's identity (inode,
modification time, size: one ``stat``); when it moved, the worker reads it, and when its hash
differs from the version served, builds a new app on the state of the current one (see
``RelayApp``: the pool, the database side, limits, metrics, breakers and latency averages,
the cache while its settings stay) and swaps it in. A worker started or respawned later reads
the same file, so every worker serves the same version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import msgspec

from relay.app import Extensions, RelayApp
from relay.app import create_app as create_static_app
from relay.cache.store import Cache
from relay.config.handoff import handed_over
from relay.config.model import Config
from relay.config.version import ConfigVersion
from relay.native import counter_for
from relay.obs.log import configure_logging
from relay.shutdown import install_granian_hook

log = logging.getLogger("relay")

# How often a worker looks for a new configuration: a reload reaches every worker within this
# (after the main process's debounce), for one stat() per worker and period.
POLL_S = 0.25

Stamp = tuple[int, int, int]


def _stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class LiveApp:
    """The RSGI application of one worker under ``relay serve``: the current app, swapped on
    a reload."""

    def __init__(self, path: Path, extensions: Extensions | None = None) -> None:
        self.path = path
        self.extensions = extensions
        self._seen = _stamp(path)
        data = path.read_bytes()
        config = msgspec.json.decode(data, type=Config)
        configure_logging(config.server.log_level, config.server.log_format)
        install_granian_hook()
        version = ConfigVersion.of_bytes(data, _mtime(self._seen))
        self.app = RelayApp(config, extensions, version=version)
        self._task: asyncio.Task[None] | None = None
        # Caches a reload stopped using: closed once requests that began on them are done.
        self._retired: dict[Cache, asyncio.Task[None]] = {}

    def __rsgi__(self, scope: Any, proto: Any) -> Awaitable[None]:
        # One attribute read per request: the snapshot the request keeps to its end.
        return self.app.__rsgi__(scope, proto)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.app.__rsgi_init__(loop)
        self._task = loop.create_task(self._follow())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
        self.app.__rsgi_del__(loop)
        for cache, closing in list(self._retired.items()):
            closing.cancel()
            loop.run_until_complete(cache.close())
        self._retired.clear()

    @property
    def version(self) -> ConfigVersion:
        """The version this worker serves."""
        return self.app.version

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.check()
            except Exception:  # the worker keeps serving what it serves
                log.exception(
                    "a reloaded configuration could not be applied in worker %d; still serving "
                    "version %s",
                    os.getpid(),
                    self.app.version.hash,
                )

    async def check(self) -> bool:
        """Swap in the published configuration if it is new; True when swapped."""
        stamp = _stamp(self.path)
        if stamp is None or stamp == self._seen:
            return False
        self._seen = stamp
        data = await asyncio.to_thread(self.path.read_bytes)
        version = ConfigVersion.of_bytes(data, _mtime(stamp))
        if version.hash == self.app.version.hash:
            return False
        await self.swap(msgspec.json.decode(data, type=Config), version)
        return True

    async def swap(self, config: Config, version: ConfigVersion) -> None:
        """Build the app of ``config`` on the current one's state and serve it from now on."""
        old = self.app
        new = RelayApp(config, self.extensions, previous=old, version=version)
        if new.cache is not None and new.cache is not old.cache:
            await new.cache.start()
        # A new model's token ranks (0.1-0.2 s to load): now, off the loop, not on a request.
        await asyncio.to_thread(lambda: [counter_for(e) for e in new.router.encodings()])
        configure_logging(config.server.log_level, config.server.log_format)
        self.app = new
        if old.cache is not None and old.cache is not new.cache:
            grace = config.server.drain_timeout_s + config.server.settle_timeout_s
            self._retired[old.cache] = asyncio.create_task(self._close_later(old.cache, grace))
        log.info("worker %d serves config version %s", os.getpid(), version.hash)

    async def _close_later(self, cache: Cache, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._retired.pop(cache, None)
        await cache.close()


def _mtime(stamp: Stamp | None) -> float | None:
    return None if stamp is None else stamp[1] / 1e9


def create_app(extensions: Extensions | None = None) -> LiveApp | RelayApp:
    """granian's factory under ``relay serve``: an app that follows reloads. Run without
    ``relay serve`` (no configuration handed over), the static app of ``relay.app``."""
    path = handed_over()
    if path is None:
        return create_static_app(None, extensions)
    return LiveApp(path, extensions)
