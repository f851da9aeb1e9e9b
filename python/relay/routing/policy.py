"""The attempt policy: which deployment each attempt of a request goes to.

The first attempt takes the first target of routing's plan whose breaker lets it through; a
request that succeeds there pays a breaker check, a budget count and the slot's bookkeeping,
nothing more. Only after a failure does the request get a cursor (:class:`RouteState`):

* the failure is classified (:mod:`relay.routing.classify`): retried, moved past, switched to
  the context-window or content-policy chain, or final;
* the model's targets are walked in the plan's order, cycling, for ``1 + retries`` attempts,
  skipping open breakers and deployments that cannot help; retrying a deployment already
  tried waits (its ``retry-after``, else backoff with full jitter), moving to another does not;
* then the fallback models follow, each with its own targets and retries (``x-relay-fallbacks``
  replaces the model's chain; a fallback's own fallbacks are not followed); a fallback the
  caller's key may not use (``allowed_models``) is skipped, whichever chain names it;
* an attempt on a deployment the request already tried is a retry and needs that
  deployment's retry budget (:mod:`relay.routing.budget`); a spent budget ends the retries
  there, not the failover to other targets or the fallbacks; ``x-relay-timeout`` ends every
  further attempt once that many seconds have passed.

When nothing is left, the last error is raised with the reasons attempts were not made
(a spent budget, a fallback the key may not use, the request's deadline) added to its message.

When every deployment was skipped because its circuit is open, the answer is a 503 with
``retry-after``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping

from relay.config.model import Timeouts
from relay.errors import CircuitOpen, GatewayError
from relay.exchange import Attempt, Deployment, Exchange
from relay.routing.backoff import backoff_s, retry_hint_s
from relay.routing.balance import Slot
from relay.routing.classify import (
    CONTEXT,
    FINAL,
    GATEWAY,
    MOVE,
    POLICY,
    action,
    error_class,
    is_breaker_failure,
)
from relay.routing.quota import DeploymentQuota, DeploymentsAtLimit, Refusal, at_limit
from relay.routing.route import ModelRoute, RouteState
from relay.routing.router import Router

log = logging.getLogger("relay.routing")


class RoutingPolicy:
    """Retries, failover across targets, fallback chains, breakers and the retry budget."""

    def __init__(
        self,
        router: Router,
        *,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        quota: DeploymentQuota | None = None,
    ) -> None:
        self.router = router
        # Deployments' own quotas (targets[].limits); None: no deployment has one.
        self.quota = quota
        self.clock = clock
        self.sleep = sleep
        self.rand = rand
        self.max_timeout_s = router.config.routing.max_request_timeout_s

    # -- the attempt loop's calls ------------------------------------------------------------
    async def next(
        self, ex: Exchange, failed: Attempt | None, err: GatewayError | None
    ) -> Deployment:
        """The deployment of the next attempt; raises ``err`` (or a 503 when every circuit
        is open) when there is none."""
        now = self.clock()
        if failed is None and not ex.attempts:
            slot_of, quota = self.router.slot, self.quota
            limited: dict[str, Refusal] | None = None
            for deployment in ex.plan:
                slot = slot_of(deployment)
                if slot.breaker.allow(now):
                    if quota is not None and deployment.limits is not None:
                        refusal = await quota.admit(ex, deployment)
                        if refusal is not None:
                            slot.breaker.release()
                            limited = limited or {}
                            limited[slot.key] = refusal
                            continue
                    slot.budget.request(now)
                    slot.inflight += 1
                    return deployment
            state = self._state(ex)
            if limited:
                state.limited.update(limited)
                state.excluded.update(id(d) for d in ex.plan if slot_of(d).key in limited)
            state.model_attempts = state.primary.max_attempts  # all open: on to the fallbacks
            return await self._advance(ex, state, now, None)
        assert err is not None and failed is not None
        state = self._state(ex)
        route = state.current
        assert route is not None
        kind = action(err, route.retry_statuses, route.retry.on_transport_error)
        if kind == FINAL:
            raise err
        if kind in (CONTEXT, POLICY):
            primary = state.primary
            chain = primary.context_fallbacks if kind == CONTEXT else primary.policy_fallbacks
            if state.switched or not chain:
                raise err
            state.switched = True
            state.chain = list(chain)
            state.model_attempts = route.max_attempts
        elif kind == MOVE:
            state.excluded.add(id(failed.deployment))
        return await self._advance(ex, state, now, err)

    def timeouts(self, ex: Exchange, deployment: Deployment) -> Timeouts | None:
        """The deployment's timeouts, capped (or set, up to ``routing.max_request_timeout_s``)
        by the request's ``x-relay-timeout``."""
        state = ex.route
        base = deployment.timeouts
        if type(state) is not RouteState or state.timeout_s is None or base is None:
            return base
        cap = state.timeout_s
        if self.max_timeout_s is None:
            first_byte, total = min(base.first_byte, cap), min(base.total_s, cap)
        else:
            cap = min(cap, self.max_timeout_s)
            first_byte = total = cap
        return Timeouts(
            connect_s=min(base.connect_s, cap),
            read_s=base.read_s,
            total_s=total,
            first_byte_s=first_byte,
            idle_s=min(base.idle, cap),
        )

    def finished(
        self,
        ex: Exchange,
        attempt: Attempt,
        err: GatewayError | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """An attempt ended: ``err`` None for a success; ``headers`` of an error answer (its
        ``retry-after``)."""
        now = self.clock()
        slot = self.router.slot(attempt.deployment)
        slot.inflight -= 1
        if err is None:
            slot.breaker.record(True, now)
            ttfb = attempt.ttfb_s
            if ttfb is not None:
                slot.observe_ttfb(ttfb)
            return
        attempt.error_class = kind = error_class(err)
        if kind == GATEWAY:
            # The gateway failed (a hook, a mapper): nothing is known of the provider's health,
            # so the call counts neither way (recording it as a success could close a circuit).
            slot.breaker.release()
        else:
            slot.breaker.record(not is_breaker_failure(err), now)
        if headers:
            hint = retry_hint_s(headers)
            if hint is not None:
                state = self._state(ex)
                key = id(attempt.deployment)
                route = state.current
                assert route is not None
                if hint > route.retry.retry_after_max_s:
                    state.excluded.add(key)  # longer than we would hold the client
                else:
                    state.not_before[key] = now + hint

    def abandoned(self, ex: Exchange, attempt: Attempt) -> None:
        """An attempt ended without an outcome (the client left, the gateway shut down)."""
        slot = self.router.slot(attempt.deployment)
        slot.inflight -= 1
        slot.breaker.release()

    # -- the cursor --------------------------------------------------------------------------
    def _state(self, ex: Exchange) -> RouteState:
        state = ex.route
        if type(state) is not RouteState:
            assert isinstance(state, ModelRoute), "the routing stage did not run"
            state = ex.route = RouteState(state)
        if state.current is None:
            primary = state.current = state.primary
            state.plan = plan = ex.plan
            chain = state.fallbacks if state.fallbacks is not None else primary.fallbacks
            state.chain = list(chain)
            for attempt in ex.attempts:
                deployment = attempt.deployment
                key = id(deployment)
                state.tries[key] = state.tries.get(key, 0) + 1
                state.model_attempts += 1
                if deployment in plan:
                    state.last = plan.index(deployment)
        return state

    async def _advance(
        self, ex: Exchange, state: RouteState, now: float, err: GatewayError | None
    ) -> Deployment:
        while True:
            route = state.current
            assert route is not None
            if state.model_attempts < route.max_attempts:
                picked = await self._pick(ex, state, now)
                if picked is not None:
                    deployment, slot = picked
                    timeout = state.timeout_s
                    if ex.attempts and timeout is not None and now - ex.started >= timeout:
                        slot.breaker.release()
                        assert err is not None
                        raise _explained(
                            err, state, f"no further attempt: x-relay-timeout {timeout:g}s passed"
                        )
                    key = id(deployment)
                    tries = state.tries.get(key, 0)
                    if not tries:
                        slot.budget.request(now)  # charged to the deployment it goes to
                    elif not slot.budget.try_retry(now):
                        slot.breaker.release()
                        self._spent(ex, state, key, slot, now)
                        continue  # other targets and fallbacks are still tried
                    wait = 0.0
                    if tries:
                        not_before = state.not_before.get(key)
                        retry = route.retry
                        wait = (
                            not_before - now
                            if not_before is not None
                            else backoff_s(
                                tries, retry.backoff_base_s, retry.backoff_max_s, self.rand
                            )
                        )
                    state.tries[key] = tries + 1
                    state.model_attempts += 1
                    slot.inflight += 1
                    if wait > 0:
                        try:
                            await self.sleep(wait)
                        except BaseException:
                            slot.inflight -= 1
                            slot.breaker.release()
                            raise
                    return deployment
            if not state.chain:
                if err is None:
                    err = (
                        at_limit(state.primary.name, list(state.limited.values()))
                        if state.limited
                        else self._all_open(state, now)
                    )
                raise _explained(err, state)
            name = state.chain.pop(0)
            allowed = ex.principal.allowed_models
            if allowed is not None and name not in allowed:
                state.denied.append(name)
                continue
            nxt = self.router.route(name)
            assert nxt is not None  # fallbacks are checked against the config
            state.current = nxt
            state.plan = nxt.balancer.order(self.rand())
            state.model_attempts = 0
            state.last = -1

    async def _pick(
        self, ex: Exchange, state: RouteState, now: float
    ) -> tuple[Deployment, Slot] | None:
        """The next deployment of the current model after the last one tried, in the plan's
        order, that is neither excluded, behind an open circuit, nor at its quota (charged
        to it when picked)."""
        plan, excluded, slot_of, quota = state.plan, state.excluded, self.router.slot, self.quota
        n = len(plan)
        for step in range(n):
            i = (state.last + 1 + step) % n
            deployment = plan[i]
            if id(deployment) in excluded:
                continue
            slot = slot_of(deployment)
            if slot.breaker.allow(now):
                if quota is not None and deployment.limits is not None:
                    refusal = await quota.admit(ex, deployment)
                    if refusal is not None:
                        slot.breaker.release()
                        excluded.add(id(deployment))  # not again for this request
                        state.limited[slot.key] = refusal
                        continue
                state.last = i
                return deployment, slot
        return None

    def _spent(self, ex: Exchange, state: RouteState, key: int, slot: Slot, now: float) -> None:
        """The retry budget of ``slot`` refused a retry: no more attempts on it for this
        request; said once per window in the log, and in the error if nothing else answers."""
        state.excluded.add(key)
        state.spent.append(slot.key)
        budget = slot.budget
        if budget.should_warn(now):
            log.warning(
                "retry budget of %s is spent (%d retries for %d requests in the last %gs): "
                "retries on it are refused until it refills; other targets and fallbacks are "
                "still tried (routing.retry_budget)",
                slot.key,
                budget.retries,
                budget.requests,
                budget.window_s,
            )
        else:
            log.debug("request %s: retry budget of %s spent, not retried", ex.request_id, slot.key)

    def _all_open(self, state: RouteState, now: float) -> CircuitOpen:
        waits = [
            self.router.slot(d).breaker.retry_in(now) for d in state.primary.balancer.orders[0]
        ]
        seconds = max(math.ceil(min(waits, default=1.0)), 1)
        return CircuitOpen(
            f"model '{state.primary.name}': every deployment is failing and paused "
            f"(circuit open); retry in {seconds}s",
            headers=(("retry-after", str(seconds)),),
        )


def _explained(err: GatewayError, state: RouteState, *notes: str) -> GatewayError:
    """``err`` with the reasons further attempts were not made added to its message."""
    reasons = list(notes)
    if state.limited and not isinstance(err, DeploymentsAtLimit):
        limited = ", ".join(state.limited)
        reasons.append(f"not tried on {limited}: at its provider quota (targets[].limits)")
    if state.spent:
        spent = list(dict.fromkeys(state.spent))
        whose = "its retry budget is" if len(spent) == 1 else "their retry budgets are"
        reasons.append(f"not retried on {', '.join(spent)}: {whose} spent (routing.retry_budget)")
    if state.denied:
        names = list(dict.fromkeys(state.denied))
        listed = ", ".join(map(repr, names))
        reasons.append(
            f"fallback {listed} not tried: this key may not use it"
            if len(names) == 1
            else f"fallbacks {listed} not tried: this key may not use them"
        )
    if reasons:
        err.message = f"{err.message} ({'; '.join(reasons)})"
        err.args = (err.message,)
    return err
