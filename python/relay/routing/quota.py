"""Deployments' own quotas (``targets[].limits``): a provider's requests and tokens per minute.

Before an attempt goes to a deployment with a quota, the attempt policy asks
:meth:`DeploymentQuota.admit`: one decision in the limits' store charging a request and the
request's reserved tokens (its prompt plus ``max_tokens``, as the limits stage asks). A
deployment at its limit is skipped as an open circuit is, and is charged nothing; when every
deployment was skipped that way the answer is a 429 (:class:`DeploymentsAtLimit`).

After the exchange (a settler, off the client's path), what was reserved is settled once: on
the attempt that answered, to the tokens it really used; on attempts that failed, given back
(their requests stay counted: the provider saw them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from relay.config.model import RateQuota
from relay.errors import RateLimited
from relay.exchange import Deployment, Exchange
from relay.native import LimitTableFull
from relay.storage.limits import Charge, Limit, LimitStore

log = logging.getLogger("relay.limits")

PER_MINUTE_S = 60.0


class DeploymentsAtLimit(RateLimited):
    """Every deployment that could answer is at its provider quota (429)."""


class _Cells:
    """The cells of one deployment's quota, built once."""

    __slots__ = ("key", "rpm", "tpm")

    def __init__(self, deployment: Deployment, quota: RateQuota) -> None:
        self.key = f"d:{deployment.provider}/{deployment.upstream_model}"
        self.rpm = None if quota.rpm is None else Limit(quota.rpm, PER_MINUTE_S, quota.rpm)
        self.tpm = None if quota.tpm is None else Limit(quota.tpm, PER_MINUTE_S, quota.tpm)


class Refusal:
    """A deployment at its quota: seconds until the attempt would fit (infinite: never, its
    tokens exceed the deployment's tokens per minute), and whether tokens ran out."""

    __slots__ = ("retry_after_s", "tokens")

    def __init__(self, retry_after_s: float, tokens: bool) -> None:
        self.retry_after_s = retry_after_s
        self.tokens = tokens


class Reservation:
    """What one attempt's admission charged: its number among the exchange's attempts, its
    token cell and the tokens reserved there."""

    __slots__ = ("attempt", "cell", "tokens")

    def __init__(self, attempt: int, cell: Charge, tokens: int) -> None:
        self.attempt = attempt
        self.cell = cell
        self.tokens = tokens


class DeploymentQuota:
    """Admission to deployments with a quota, and the settlement of what they reserved.

    ``tokens`` is what a request reserves: its prompt's tokens plus ``max_tokens`` (the limits
    stage's ask; asked only when a deployment with a tokens quota is tried).
    """

    def __init__(self, store: LimitStore, tokens: Callable[[Exchange], Awaitable[int]]) -> None:
        self.store = store
        self.tokens = tokens
        self._cells: dict[tuple[str, str], _Cells] = {}

    async def admit(self, ex: Exchange, deployment: Deployment) -> Refusal | None:
        """Charge an attempt on ``deployment`` (a request, and the request's tokens): None
        when admitted, else when it would be and what ran out."""
        quota = deployment.limits
        if quota is None:
            return None
        cells = self._cells_of(deployment, quota)
        charges: list[Charge] = []
        if cells.rpm is not None:
            charges.append(Charge(cells.key + ":rpm", cells.rpm))
        tokens = 0
        token_charge: Charge | None = None
        if cells.tpm is not None:
            tokens = await self.tokens(ex)
            if tokens > 0:
                token_charge = Charge(cells.key + ":tpm", cells.tpm, float(tokens))
                charges.append(token_charge)
        try:
            decision = await self.store.take(charges)
        except LimitTableFull:
            # Nothing was charged; as for every limit, a table that cannot keep it lets the
            # request pass, loudly (it is sized so that this does not happen).
            log.error("the limits' table is full: %s passes without its quota", cells.key)
            return None
        if not decision.allowed:
            short = token_charge is not None and decision.cells[-1].remaining < tokens
            return Refusal(decision.retry_after_s, short)
        if token_charge is not None:
            held: list[Reservation] = ex.state_of(self, list)
            held.append(Reservation(len(ex.attempts), token_charge, tokens))
        return None

    async def settle(self, ex: Exchange) -> None:
        """Once the exchange is over: the answering attempt's tokens settled to its usage,
        failed attempts' given back (a settler)."""
        state = ex.state
        held: list[Reservation] | None = state.get(self) if state is not None else None
        if not held:
            return
        answer = ex.answer
        used = ex.usage.total_tokens if ex.usage is not None else None
        adjustments: list[Charge] = []
        for reservation in held:
            cell = reservation.cell
            if answer is None or answer.number != reservation.attempt:
                delta = -reservation.tokens  # a failed attempt: give its tokens back
            elif used is None:
                continue  # an answer whose usage is unknown keeps its reservation
            else:
                delta = used - reservation.tokens
            if delta:
                adjustments.append(Charge(cell.key, cell.limit, float(delta)))
        held.clear()
        if adjustments:
            await self.store.adjust(adjustments)

    def _cells_of(self, deployment: Deployment, quota: RateQuota) -> _Cells:
        key = (deployment.provider, deployment.upstream_model)
        cells = self._cells.get(key)
        if cells is None:
            cells = self._cells[key] = _Cells(deployment, quota)
        return cells


def at_limit(model: str, refusals: list[Refusal]) -> DeploymentsAtLimit:
    """The 429 when the deployments of ``model`` were skipped at their quotas."""
    finite = [r.retry_after_s for r in refusals if math.isfinite(r.retry_after_s)]
    if finite:
        seconds = max(math.ceil(min(finite)), 1)
        why = f"every deployment is at its provider quota (targets[].limits); retry in {seconds}s"
    else:
        seconds = 60
        why = (
            "this request's tokens (prompt + max_tokens) exceed the tokens per minute of "
            "every deployment (targets[].limits.tpm)"
        )
    return DeploymentsAtLimit(
        f"model '{model}': {why}",
        kind="tokens" if any(r.tokens for r in refusals) else "requests",
        code="rate_limit_exceeded",
        headers=(("retry-after", str(seconds)),),
    )
