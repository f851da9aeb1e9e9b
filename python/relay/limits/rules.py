"""The request and token limits of callers, keys and tenants (budgets and model limits are
rules of their own, beside these).

- :class:`CallerRule`: ``ratelimit`` (requests per second, in bursts) of each caller (its
  gateway key, a hash of its own credential under ``passthrough``, else its address), or of
  the whole gateway (``ratelimit.scope: global``).
- :class:`PrincipalRule`: a key's and its tenant's ``rate_limit_rpm`` (bursts of the
  per-minute amount) and ``tokens_per_minute``, both applying; ``limits.tokens_per_minute``
  for a tenant that sets none (also one named only by ``metadata.tenant``).

Cells are named ``c:``/``g:`` (callers, the gateway), ``k:`` (keys) and ``t:`` (tenants).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from relay.config.model import Config
from relay.exchange import Exchange, Limits, Principal
from relay.limits.rule import Ask, LimitRule, Meter, Metered
from relay.storage.limits import Charge, Limit

MINUTE = 60.0
# Limits are made once per distinct amount, not per request; amounts come from the
# configuration and the database, so this bound is never reached by a sane deployment.
_MAX_LIMITS = 4096
_per_minute: dict[float, Limit] = {}


def per_minute(amount: float) -> Limit:
    """``amount`` per minute in bursts of ``amount`` (a ``rate_limit_rpm`` or a TPM)."""
    limit = _per_minute.get(amount)
    if limit is None:
        if len(_per_minute) >= _MAX_LIMITS:
            _per_minute.clear()
        limit = _per_minute[amount] = Limit(amount, MINUTE, amount)
    return limit


def caller_of(ex: Exchange, by_credential: bool = True) -> str:
    """Whom a caller limit counts: the gateway key, else (``by_credential``: under
    ``passthrough``) a hash of the caller's own credential, never the credential, else the
    client's address without its port."""
    principal = ex.principal
    if principal.key_id is not None:
        return "k" + principal.key_id
    credential = principal.client_authorization
    if credential and by_credential:
        return "h" + hashlib.blake2b(credential.encode(), digest_size=12).hexdigest()
    host = ex.client.rpartition(":")[0] or ex.client
    return "a" + host


class CallerRule:
    """``ratelimit``: each caller's requests (or the whole gateway's, ``scope: global``)."""

    __slots__ = ("_by_credential", "_global", "_limit")

    def __init__(
        self,
        requests_per_second: float,
        burst: float,
        scope: str = "caller",
        auth_mode: str | None = "passthrough",
    ) -> None:
        self._limit = Limit(requests_per_second, 1.0, burst)
        self._by_credential = auth_mode == "passthrough"
        self._global = (
            (Metered(Charge("g:rps", self._limit), Meter.REQUESTS, "global"),)
            if scope == "global"
            else None
        )

    def charges(self, ex: Exchange, ask: Ask) -> Sequence[Metered]:
        """One request against the caller's cell (or the gateway's)."""
        if self._global is not None:
            return self._global
        caller = caller_of(ex, self._by_credential)
        return (Metered(Charge(f"c:{caller}:rps", self._limit), Meter.REQUESTS, "caller"),)


class PrincipalRule:
    """A key's and its tenant's requests and tokens per minute (both apply), with
    ``limits.tokens_per_minute`` for a tenant that sets no TPM of its own."""

    __slots__ = ("_default_tpm",)

    def __init__(self, default_tpm: int | None = None) -> None:
        self._default_tpm = per_minute(float(default_tpm)) if default_tpm else None

    def charges(self, ex: Exchange, ask: Ask) -> Sequence[Metered]:
        """The key's rpm and tpm, then the tenant's (or the default tpm)."""
        principal = ex.principal
        key, tenant = principal.key_limits, principal.tenant_limits
        default_tpm = self._default_tpm
        if key is None and tenant is None and default_tpm is None:
            return ()
        out: list[Metered] = []
        if key is not None and principal.key_id is not None:
            _add(out, f"k:{principal.key_id}", key, ask, "key")
        name = _tenant_cell(principal)
        if tenant is not None:
            _add(out, name, tenant, ask, "tenant")
        if default_tpm is not None and (tenant is None or tenant.tokens_per_minute is None):
            out.append(
                Metered(Charge(f"{name}:tpm", default_tpm, ask.tokens), Meter.TOKENS, "tenant")
            )
        return out


def _tenant_cell(principal: Principal) -> str:
    if principal.tenant_id is not None:
        return f"t:{principal.tenant_id}"
    return f"t:{principal.organization}/{principal.tenant}"


def _add(out: list[Metered], cell: str, limits: Limits, ask: Ask, scope: str) -> None:
    if limits.rate_limit_rpm:
        out.append(
            Metered(Charge(f"{cell}:rpm", per_minute(limits.rate_limit_rpm)), Meter.REQUESTS, scope)
        )
    if limits.tokens_per_minute:
        limit = per_minute(limits.tokens_per_minute)
        out.append(Metered(Charge(f"{cell}:tpm", limit, ask.tokens), Meter.TOKENS, scope))


def limit_rules(config: Config, auth_mode: str | None) -> list[LimitRule]:
    """The rules of this module that the configuration asks for (keys and tenants carry limits
    only under ``auth.mode: keys`` and ``none``; the default TPM applies in every mode)."""
    rules: list[LimitRule] = []
    ratelimit = config.ratelimit
    if ratelimit.enabled:
        rules.append(
            CallerRule(ratelimit.requests_per_second, ratelimit.burst, ratelimit.scope, auth_mode)
        )
    if auth_mode in ("keys", "none") or config.limits.tokens_per_minute:
        rules.append(PrincipalRule(config.limits.tokens_per_minute))
    return rules
