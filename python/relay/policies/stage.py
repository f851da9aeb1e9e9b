"""The policies on the request path: one stage that runs each request's chain before the
limits and routing, and one answer hook, one stream hook and one tap that call only the
policies active for that request.

The stage keeps the request's chain on the exchange when some policy of it looks at the
answer; the dispatchers find it there (one dict look-up) and do nothing for any other request.
App.py lists the stage only when some policy is configured, and each dispatcher only when some
policy has that kind of hook: a gateway without policies pays nothing.
"""

from __future__ import annotations

import logging

from relay.exchange import Endpoint, Exchange
from relay.policies.registry import Chain, Policies
from relay.stage import Reply

log = logging.getLogger("relay")

__all__ = ["PoliciesStage", "PolicyAnswers", "PolicyStreams", "PolicyTaps"]

# The key of the request's chain in ``ex.state``.
ACTIVE = object()

# What policies read: the inference endpoints (pass-through and token counting are not
# inspected: a pass-through body is not the gateway's to read, and a count generates nothing).
_INSPECTED = frozenset(
    {
        Endpoint.CHAT,
        Endpoint.COMPLETIONS,
        Endpoint.EMBEDDINGS,
        Endpoint.MESSAGES,
        Endpoint.RESPONSES,
    }
)


def active_chain(ex: Exchange) -> Chain | None:
    """The chain this request ran, when some policy of it looks at answers."""
    state = ex.state
    return state.get(ACTIVE) if state else None


class PoliciesStage:
    """Runs ``on_request`` of each policy of the request's chain, in order (a
    :class:`~relay.stage.Stage`, after authentication, before the limits and routing)."""

    def __init__(self, policies: Policies) -> None:
        self.policies = policies

    async def __call__(self, ex: Exchange) -> Reply | None:
        if ex.endpoint not in _INSPECTED or ex.method != "POST":
            return None
        chain = self.policies.chain(ex.model, ex.principal.tenant)
        if chain.observes:  # before the policies run: a refused request is observed too
            state = ex.state
            if state is None:
                state = ex.state = {}
            state[ACTIVE] = chain
        for policy in chain.policies:
            pending = policy.on_request(ex)
            if pending is not None:
                await pending
        return None


class PolicyAnswers:
    """The policies' answer hooks, for the requests whose chain has any."""

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        """Each active policy's hook in order, on what the one before returned."""
        chain = active_chain(ex)
        if chain is None:
            return body
        for hook in chain.answer_hooks:
            body = hook.on_answer(ex, body)
        return body


class PolicyStreams:
    """The policies' stream hooks, for the requests whose chain has any. A hook may return
    several frames: the next one sees them one at a time, as the relay hands events."""

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        """Pass ``event`` through each active policy's hook, in order."""
        chain = active_chain(ex)
        if chain is None:
            return event
        hooks = chain.stream_hooks
        if len(hooks) == 1:  # the common case: no frames to split between hooks
            return hooks[0].on_event(ex, event)
        return _through(ex, chain, 0, event) if hooks else event

    def on_end(self, ex: Exchange) -> bytes:
        """What the active hooks still hold; each one's release passes the later ones."""
        chain = active_chain(ex)
        if chain is None:
            return b""
        out = b""
        for i, hook in enumerate(chain.stream_hooks):
            if out:
                out = _through(ex, chain, i, out)
            out += hook.on_end(ex)
        return out


def _through(ex: Exchange, chain: Chain, first: int, frames: bytes) -> bytes:
    """``frames`` (whole events) through the hooks of ``chain`` from index ``first`` on."""
    hooks = chain.stream_hooks
    for i in range(first, len(hooks)):
        hook = hooks[i]
        if frames.count(b"\n\n") <= 1:
            frames = hook.on_event(ex, frames)
        else:
            events = frames.split(b"\n\n")
            tail = events.pop()
            frames = b"".join(hook.on_event(ex, e + b"\n\n") for e in events) + tail
        if not frames:
            return b""
    return frames


class PolicyTaps:
    """The policies' taps, once per finished exchange whose chain has any; listed before the
    ledger's tap, so what a policy leaves on the exchange for the ledger is there in time."""

    def on_finish(self, ex: Exchange) -> None:
        """Each active policy's tap, each isolated from the others' failures."""
        chain = active_chain(ex)
        if chain is None:
            return
        for tap in chain.taps:
            try:
                tap.on_finish(ex)
            except Exception:
                log.exception("policy tap failed for request %s", ex.request_id)
