"""Checks of the ``auth`` and ``database`` sections that the schema cannot express.

Their environment overrides (``DATABASE_URL``, ``RELAY_ADMIN_KEY``, ``RELAY_AUTH_MODE``) are
listed with the others in ``env.py``.
"""

from __future__ import annotations

import os
import re

from relay.config.model import Config
from relay.config.problems import Problems

# ``database.url`` of a gateway that keeps no database at all.
NO_DATABASE = "none"
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def check_tenancy(config: Config, problems: Problems) -> None:
    """Append the problems of ``auth`` and ``database``."""
    url = config.database.url
    if url == NO_DATABASE:
        if config.auth.mode == "keys":
            problems.add(
                "auth.mode",
                "keys are kept in the database, and database.url is none: set a database "
                "(sqlite:///PATH or postgresql://...) or another auth.mode",
            )
    elif not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        problems.add(
            "database.url",
            f"expected sqlite:///PATH, postgresql://... or none, got {redacted_url(url)!r}",
        )
    days = config.database.retention_days
    if days is not None and not days > 0:
        problems.add(
            "database.retention_days",
            f"expected a positive number of days (or null: keep forever), got {days}",
        )
    ledger = config.database.ledger
    if ledger.queue_size < 1:
        problems.add("database.ledger.queue_size", "expected at least 1")
    if ledger.batch_size < 1:
        problems.add("database.ledger.batch_size", "expected at least 1")
    if ledger.flush_interval_s <= 0:
        problems.add("database.ledger.flush_interval_s", "expected a positive number of seconds")
    if config.database.responses.queue_bytes < 1:
        problems.add("database.responses.queue_bytes", "expected at least 1")
    auth = config.auth
    if not 0 < auth.key_refresh_s <= 1.5:
        # Revocation must reach every worker within 2 s: poll + reload has to fit in it.
        problems.add("auth.key_refresh_s", "expected more than 0 and at most 1.5 seconds")
    if auth.admin_key is not None and len(auth.admin_key) < 16:
        problems.add("auth.admin_key", "expected at least 16 characters")
    defaults_to_keys = auth.mode is None and auth.admin_key and config.database.url != NO_DATABASE
    if auth.mode == "keys" or defaults_to_keys:
        # Unset with an admin key, the mode is keys (relay.auth.mode): the same conflict.
        why = "auth.mode keys" if auth.mode else "auth.mode keys (the default with an admin key)"
        for name, provider in config.providers.items():
            if provider.forward_client_auth:
                problems.add(
                    f"providers.{name}.forward_client_auth",
                    f"cannot forward the caller's key in {why}: callers present gateway keys; "
                    "set the provider's api_key"
                    + ("" if auth.mode else ", or set auth.mode: passthrough"),
                )


def redacted_url(url: str, mask: str = "***") -> str:
    """The URL with its password (in the user part or a ``password=`` parameter) as ``mask``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    query_at = rest.find("?")
    at = rest.rfind("@", 0, query_at if query_at >= 0 else len(rest))
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = f"{user}{':' + mask if colon else ''}{rest[at:]}"
    return scheme + "://" + _PASSWORD_PARAM.sub(lambda m: m.group(1) + mask, rest)


def ledger_location(config: Config) -> str:
    """Where the ledger is written, for the start-up line: the SQLite file's absolute path, the
    PostgreSQL URL without its password, or off (and why)."""
    database = config.database
    if database.url == NO_DATABASE:
        return "off (database.url: none: no ledger, keys, admin API or stored responses)"
    if database.url.startswith("sqlite:///"):
        path = database.url.removeprefix("sqlite:///")
        where = "in memory" if path == ":memory:" else f"SQLite file {os.path.abspath(path)}"
    else:
        where = f"PostgreSQL {redacted_url(database.url)}"
    if not database.ledger.enabled:
        return f"off (database.ledger.enabled: false); database: {where}"
    days = database.retention_days
    kept = "kept forever" if days is None else f"rows kept {days:g} days"
    return f"{where}, {kept}"
