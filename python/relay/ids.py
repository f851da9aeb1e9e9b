"""Unique ids for requests and ledger rows without a system call each.

``secrets.token_hex`` reads the kernel's random source on every call; an id here is a random
prefix drawn once per process (again in every forked worker) and a counter, unique across
workers and hosts as long as prefixes do not collide (64 random bits).
"""

from __future__ import annotations

import itertools
import os
import secrets

_state = {"prefix": ""}
_counter = itertools.count(1)


def _reseed() -> None:
    _state["prefix"] = secrets.token_hex(8)


_reseed()
os.register_at_fork(after_in_child=_reseed)


def new_id(kind: str) -> str:
    """``kind`` + 16 hex digits of this process's prefix + a hex counter (e.g. ``req_...``)."""
    return f"{kind}{_state['prefix']}{next(_counter):08x}"
