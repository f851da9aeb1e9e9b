"""Per-model limits (``models.X.limits: {rpm, tpm}``): every caller of a model together.

A :class:`~relay.limits.rule.LimitRule` of scope ``model``: a request to a limited model is
charged one request and its reserved tokens (prompt + ``max_tokens``) in the model's cells,
in the same decision as the caller's and tenant's limits. Bursts are a minute's worth.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.config.model import Config
from relay.exchange import Exchange
from relay.limits.ask import Asks
from relay.limits.rule import Ask, Meter, Metered
from relay.storage.limits import Charge, Limit

PER_MINUTE_S = 60.0
_NONE: tuple[Metered, ...] = ()


class ModelLimits:
    """The rule for ``models.X.limits``; built once from the configuration."""

    __slots__ = ("_default", "_requests", "_tokens")

    def __init__(self, config: Config) -> None:
        self._default = config.routing.default_model
        # model -> its request charge (the same object every time) and its tokens cell.
        self._requests: dict[str, Metered] = {}
        self._tokens: dict[str, tuple[str, Limit]] = {}
        for name, model in config.models.items():
            quota = model.limits
            if quota is None:
                continue
            if quota.rpm is not None:
                limit = Limit(quota.rpm, PER_MINUTE_S, quota.rpm)
                self._requests[name] = Metered(
                    Charge(f"m:{name}:rpm", limit), Meter.REQUESTS, "model"
                )
            if quota.tpm is not None:
                self._tokens[name] = (f"m:{name}:tpm", Limit(quota.tpm, PER_MINUTE_S, quota.tpm))

    @property
    def active(self) -> bool:
        """Does any model have a limit? (No: the rule need not be listed.)"""
        return bool(self._requests or self._tokens)

    def charges(self, ex: Exchange, ask: Ask) -> Sequence[Metered]:
        """The model's request and tokens charges (none for a model without limits)."""
        name = ex.model or self._default
        if name is None:
            return _NONE
        requests = self._requests.get(name)
        tokens = self._tokens.get(name)
        if tokens is None:
            return _NONE if requests is None else (requests,)
        metered = Metered(Charge(tokens[0], tokens[1], float(ask.tokens)), Meter.TOKENS, "model")
        return (metered,) if requests is None else (requests, metered)


class AskedTokens:
    """The tokens a request reserves, for the deployments' quotas (``targets[].limits.tpm``):
    what the limits stage reserved, or asked once here when no limit of the stage counts
    tokens. Called only when a deployment with a tokens quota is tried."""

    __slots__ = ("asks",)

    def __init__(self, asks: Asks) -> None:
        self.asks = asks

    async def __call__(self, ex: Exchange) -> int:
        """Prompt tokens + ``max_tokens`` (or ``limits.default_max_tokens``)."""
        reservation = ex.limits
        if reservation is not None:
            for metered in reservation.charges:
                if metered.meter is Meter.TOKENS:
                    return int(metered.charge.cost)
        known: list[int] = ex.state_of(self, list)
        if not known:
            known.append((await self.asks.of(ex)).tokens)
        return known[0]
