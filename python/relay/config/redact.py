"""The configuration as ``GET /admin/config`` shows it: every secret replaced.

A value is a secret by its name (``api_key``, ``admin_key``, ``password``, ``client_secret``,
``session_secret``, ``bearer_token``, AWS credentials, and the same words in a provider's
``headers``/``settings`` or a policy's options), and a URL's password (``database.url``,
``telemetry.endpoint``, a ``base_url``) is replaced inside the URL. Names are matched rather
than fields listed so that a secret added to a policy or a plug-in's settings is hidden too.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from relay.config.model import Config
from relay.config.tenancy import redacted_url

REDACTED = "[redacted]"

# Whole words of a snake_case (or header-case) name: the last word, or "secret"/"password"
# anywhere (client_secret, session_secret, aws_secret_access_key).
_SECRET_NAME = re.compile(
    r"(^|_)(key|token|secret|password|passwd|authorization|cookie|credentials?)$"
    r"|secret|password|access_key",
)


def is_secret_name(name: str) -> bool:
    """Does a member called ``name`` hold a secret?"""
    return bool(_SECRET_NAME.search(name.lower().replace("-", "_")))


def redacted(config: Config) -> dict[str, Any]:
    """``config`` as plain data with every secret replaced by ``[redacted]`` (unset stays
    ``null``, so the page still says whether a secret is set)."""
    plain = msgspec.to_builtins(config)
    assert isinstance(plain, dict)
    return {k: _walk(k, v) for k, v in plain.items()}


def redact_value(name: str, value: Any) -> Any:
    """``value`` of a member called ``name``, plain, with its secrets redacted."""
    return _walk(name, msgspec.to_builtins(value))


def _walk(name: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _walk(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(name, v) for v in value]
    if isinstance(value, str) and value:
        if is_secret_name(name):
            return REDACTED
        return redacted_url(value, REDACTED)
    return value
