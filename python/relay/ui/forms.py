"""Posted forms turned into the admin API's JSON bodies: the API then checks them exactly as
it checks a JSON client's (the error names the field)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from relay.errors import InvalidRequest

_INTS = ("rate_limit_rpm", "tokens_per_minute")
_FLOATS = ("budget_usd", "budget_alert_ratio")
_TEXT = ("name", "organization", "budget_period", "tenant_id", "user_id", "role")


def _number(name: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise InvalidRequest(f"{name}: expected {what}, got {value!r}", param=name) from None


def body(form: Mapping[str, str], fields: tuple[str, ...]) -> bytes:
    """The JSON body of ``fields`` filled in on ``form`` (blank fields left out)."""
    out: dict[str, Any] = {}
    for name in fields:
        value = form.get(name, "").strip()
        if not value:
            continue
        if name in _INTS:
            out[name] = _number(name, value, int)
        elif name in _FLOATS:
            out[name] = _number(name, value, float)
        elif name == "allowed_models":
            out[name] = [m.strip() for m in value.replace("\n", ",").split(",") if m.strip()]
        elif name == "expires_at":
            # A date field: the key stops working at the start of that UTC day.
            out[name] = value if "T" in value else f"{value}T00:00:00+00:00"
        elif name in _TEXT:
            out[name] = value
    return msgspec.json.encode(out)


TENANT_FIELDS = (
    "name", "organization", "allowed_models", "rate_limit_rpm", "tokens_per_minute",
    "budget_usd", "budget_period", "budget_alert_ratio",
)  # fmt: skip
KEY_FIELDS = (
    "tenant_id", "user_id", "name", "allowed_models", "rate_limit_rpm", "tokens_per_minute",
    "budget_usd", "budget_period", "budget_alert_ratio", "expires_at",
)  # fmt: skip
USER_FIELDS = ("name", "role", "organization")
