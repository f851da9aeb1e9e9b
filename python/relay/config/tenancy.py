"""Checks of the ``auth`` and ``database`` sections that the schema cannot express.

Their environment overrides (``DATABASE_URL``, ``RELAY_ADMIN_KEY``, ``RELAY_AUTH_MODE``) are
listed with the others in ``env.py``.
"""

from __future__ import annotations

from relay.config.model import Config
from relay.config.problems import Problems


def check_tenancy(config: Config, problems: Problems) -> None:
    """Append the problems of ``auth`` and ``database``."""
    url = config.database.url
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        problems.add(
            "database.url", f"expected sqlite:///PATH or postgresql://..., got {_safe_url(url)!r}"
        )
    ledger = config.database.ledger
    if ledger.queue_size < 1:
        problems.add("database.ledger.queue_size", "expected at least 1")
    if ledger.batch_size < 1:
        problems.add("database.ledger.batch_size", "expected at least 1")
    if ledger.flush_interval_s <= 0:
        problems.add("database.ledger.flush_interval_s", "expected a positive number of seconds")
    auth = config.auth
    if not 0 < auth.key_refresh_s <= 1.5:
        # Revocation must reach every worker within 2 s: poll + reload has to fit in it.
        problems.add("auth.key_refresh_s", "expected more than 0 and at most 1.5 seconds")
    if auth.admin_key is not None and len(auth.admin_key) < 16:
        problems.add("auth.admin_key", "expected at least 16 characters")
    if auth.mode == "keys" or (auth.mode is None and auth.admin_key):
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


def _safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
