"""Where the limits' cells live: the one place the store is chosen.

Under ``relay serve`` every worker attaches the shared memory the main process made before
starting them (:func:`relay.storage.memory.served_store`), so a limit holds exactly across
``--workers``. Without it (granian run directly, an app built in a test's process) the cells
are private to this process, in a segment of its own whose name is removed at once (nothing
to clean up; the mapping stays valid). Redis, when configured, is chosen here too.
"""

from __future__ import annotations

import logging
import os
import secrets

from relay.config.model import Config
from relay.storage.limits import LimitStore
from relay.storage.memory import SharedMemoryStore, served_store

log = logging.getLogger("relay.limits")

# A private table: one process's callers and tenants (65,536 cells in 1.5 MiB).
PRIVATE_SLOTS = 1 << 16


def limit_store(config: Config) -> LimitStore:
    """The store every limit of this worker decides in."""
    try:
        served = served_store()
    except FileNotFoundError:
        log.error("the limits' shared memory is gone; this worker's limits are its own")
        served = None
    if served is not None:
        return served
    return private_store()


def private_store() -> SharedMemoryStore:
    """Cells of this process alone (not shared with other workers)."""
    name = f"relay-limits-private-{os.getpid()}-{secrets.token_hex(4)}"
    store = SharedMemoryStore.create(name, PRIVATE_SLOTS)
    store.unlink()
    return store
