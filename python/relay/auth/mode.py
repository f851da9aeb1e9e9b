"""Which ``auth.mode`` a gateway runs when the config does not say, decided once at start.

Unset, the mode is ``keys`` as soon as there is anything to check keys against: an admin key
(the admin API issues ``gw-sk-`` keys) or active keys in the database. A gateway that hands
out keys must never accept any caller by default. Otherwise it is ``passthrough``, as before.
An explicit mode other than ``keys`` is kept, with a warning at every start while the database
holds active keys (they are not checked).

The main process decides and hands the workers an explicit mode, so all workers agree and the
start-up line states the mode served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from relay.config import Config
from relay.config.model import AuthMode
from relay.config.tenancy import NO_DATABASE
from relay.ledger.connect import open_database
from relay.ledger.database import Database, DatabaseUnavailable

log = logging.getLogger("relay")

# Keys a caller could use now: not revoked, not expired, their tenant (if any) not deleted.
_ACTIVE = (
    "SELECT COUNT(*) FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id "
    "WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) "
    "AND t.deleted_at IS NULL"
)
_HAS_TABLE = {
    "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'api_keys'",
    "postgresql": "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'api_keys' "
    "AND schemaname = ANY (current_schemas(false))",
}


class AuthModeUnknown(Exception):
    """``auth.mode`` is not set and the database could not be asked whether it holds keys."""


@dataclass(frozen=True, slots=True)
class AuthChoice:
    """The mode to serve, why (for the start-up line), and what the operator must hear."""

    mode: AuthMode
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


def choose_mode(config: Config, active_keys: int | None) -> AuthChoice:
    """The mode for ``config`` given how many active keys the database holds (None: not
    asked, which only happens when the answer cannot change the mode)."""
    auth = config.auth
    active = active_keys or 0
    if auth.mode is not None:
        warnings = []
        if auth.mode != "keys" and active:
            warnings.append(
                f"auth.mode is {auth.mode}, but the database holds {_keys(active)}: they are "
                "not checked and any caller is accepted; set auth.mode: keys to enforce them"
            )
        return AuthChoice(auth.mode, None, warnings)
    if config.database.url == NO_DATABASE:
        # No keys can exist, and an admin key has no API to use (a start-up warning says so).
        return AuthChoice("passthrough", "auth.mode is not set and database.url is none")
    if auth.admin_key:
        # config checks refuse this with a provider that forwards the caller's key.
        return AuthChoice("keys", "auth.mode is not set and an admin key is set")
    forwarding = sorted(n for n, p in config.providers.items() if p.forward_client_auth)
    if active and forwarding:
        return AuthChoice(
            "passthrough",
            "auth.mode is not set and providers forward callers' own keys",
            [
                f"the database holds {_keys(active)}, but auth.mode is not set and "
                f"{', '.join(forwarding)} forward(s) the caller's own key, so the mode is "
                "passthrough and gateway keys are not checked; set auth.mode"
            ],
        )
    if active:
        return AuthChoice("keys", f"auth.mode is not set and the database holds {_keys(active)}")
    return AuthChoice("passthrough", "auth.mode is not set, and no admin key or active gateway key")


def _keys(count: int) -> str:
    return f"{count} active gateway key{'s' if count != 1 else ''}"


def needs_database(config: Config) -> bool:
    """Whether the choice depends on the database (else no connection is made)."""
    auth = config.auth
    if config.database.url == NO_DATABASE:
        return False
    return auth.mode != "keys" and not (auth.mode is None and auth.admin_key)


async def count_active_keys(db: Database) -> int:
    """Active keys in a connected database (0 before its schema exists)."""
    (has_table,) = (await db.fetch(_HAS_TABLE[db.dialect]))[0]
    if not has_table:
        return 0
    (count,) = (await db.fetch(_ACTIVE, [time.time()]))[0]
    return int(count)


async def _ask(url: str, attempts: int, delay_s: float) -> int:
    db = open_database(url)
    try:
        for attempt in range(attempts):
            try:
                await db.connect()
                return await count_active_keys(db)
            except DatabaseUnavailable as exc:
                if attempt == attempts - 1:
                    raise AuthModeUnknown(str(exc)) from exc
                log.warning("database not reachable yet, retrying: %s", exc)
                await asyncio.sleep(delay_s)
        raise AssertionError("unreachable")
    finally:
        await db.close()


def resolve_auth(config: Config, *, attempts: int = 20, delay_s: float = 0.5) -> AuthChoice:
    """Decide the mode, asking the database when the answer depends on it.

    Blocking: for start-up in the main process (and in a worker started without one). It runs
    on its own thread and event loop, so a running loop in the caller's thread does not matter.
    Raises :class:`AuthModeUnknown` when the mode is not set, depends on the database, and the
    database stayed unreachable; with an explicit mode an unreachable database only costs the
    warning about unchecked keys.
    """
    if not needs_database(config):
        return choose_mode(config, None)
    url = config.database.url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return choose_mode(config, 0)  # no file yet: no keys (and asking would create it)
    tries = attempts if config.auth.mode is None else 1
    with ThreadPoolExecutor(1, thread_name_prefix="relay-auth-mode") as pool:
        future = pool.submit(asyncio.run, _ask(url, tries, delay_s))
        try:
            active = future.result()
        except AuthModeUnknown:
            if config.auth.mode is None:
                raise
            log.warning(
                "could not check the database for active gateway keys (auth.mode %s does not "
                "check them)",
                config.auth.mode,
            )
            active = None
    return choose_mode(config, active)


def with_mode(config: Config, choice: AuthChoice) -> Config:
    """``config`` with the chosen mode written in (what the workers are handed)."""
    auth = msgspec.structs.replace(config.auth, mode=choice.mode)
    return msgspec.structs.replace(config, auth=auth)
