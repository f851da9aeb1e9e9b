"""The contract of a prompt policy: what a kind (built-in or a plugin's) builds from its
config block, and what the policies stage asks of it for each request.

A policy kind is a factory registered by name: the built-ins in ``BUILTIN_KINDS``, plugins
under the ``relay.middleware`` entry-point group. The factory is called once per config
(at start and on reload) with the policy's name and its settings; the ``Policy`` it returns
is shared by every request, so per-request state goes on the exchange
(``Exchange.state_of(self, ...)``), never on the policy.

Order: the policies stage runs after authentication (the tenant is known) and before the
limits and routing (they see the rewritten request). For each request it takes the global
``middleware`` list, then ``models.<model>.policies``, then ``tenant_policies.<tenant>``,
and calls ``on_request`` of each in that order. Answers pass the policies' hooks in the
same order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from relay.config import Config
    from relay.exchange import Exchange
    from relay.stage import AnswerHook, StreamHook, Tap

__all__ = ["BUILTIN_KINDS", "ENTRY_POINT_GROUP", "Policy", "PolicyFactory", "PolicySpec"]

# Plugins: ``[project.entry-points."relay.middleware"] mykind = "pkg.module:factory"``.
ENTRY_POINT_GROUP = "relay.middleware"

# The built-in kinds: name -> "module:factory" (imported only when a policy uses the kind).
BUILTIN_KINDS: Mapping[str, str] = {
    "redact": "relay.policies.redact:build",
    "rewrite": "relay.policies.rewrite:build",
    "guardrail": "relay.policies.guardrail:build",
    "log_content": "relay.policies.log_content:build",
}


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One entry of ``policies:``: its name, its kind and the rest of its block."""

    name: str
    kind: str
    settings: Mapping[str, Any]
    # The whole gateway config (models, pricing, encodings), for kinds that need it.
    config: Config


class Policy(Protocol):
    """A built policy. ``on_request`` runs before routing; the hooks and the tap are ``None``
    when the policy does not look at answers (then it costs nothing after the request)."""

    name: str
    # Observe or transform a JSON answer / each stream event (restoration, output guards).
    answer_hook: AnswerHook | None
    stream_hook: StreamHook | None
    # Run once after the last byte (content logging).
    tap: Tap | None

    def on_request(self, ex: Exchange) -> Awaitable[None] | None:
        """Read or rewrite the request before routing. Edit text through
        ``relay.policies.texts`` (which re-encodes ``ex.body`` and refreshes ``ex.request``
        and ``ex.model``); refuse by raising a ``GatewayError`` (rendered in the dialect's
        envelope). A request no policy changes is forwarded as its original bytes.

        Decided in memory, return None; when the decision needs work off the loop (counting
        a long prompt's tokens on a thread), return an awaitable that decides: the stage
        awaits it before the next policy runs. Synchronous by default, so the common case
        costs no coroutine (as :meth:`relay.stage.Gate.admit`)."""
        ...


# Raises ValueError with a message naming the setting (``policies.pii.entities.fax: ...``)
# when the block is wrong; check-config and reload report it.
PolicyFactory = Callable[[PolicySpec], Policy]
