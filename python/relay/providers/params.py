"""Which OpenAI request parameters a provider takes, and how: the rules behind the table in
docs/providers.md.

A parameter the provider cannot honour is a 400 naming it, unless the model sets
``drop_unsupported_params: true``; a renamed parameter is moved to the provider's name for it;
a stripped one is removed because the gateway itself takes care of it. Bodies that need no
change are never decoded; the others are decoded to top-level members whose values stay the
client's bytes (``msgspec.Raw``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from relay.errors import InvalidRequest
from relay.exchange import Attempt, Exchange

_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_NULL = b"null"


@dataclass(frozen=True, slots=True)
class ParamRules:
    """How one provider kind takes the parameters of one endpoint."""

    # Parameters the provider rejects or silently ignores.
    unsupported: frozenset[str] = frozenset()
    # OpenAI name -> the provider's name for the same parameter.
    renamed: Mapping[str, str] = field(default_factory=dict)
    # Removed without a word: the gateway handles them (e.g. stream_options).
    stripped: frozenset[str] = frozenset()
    # Parameters beyond OpenAI's that the vendor takes under the same name: a translation
    # from another API may send them (``top_k`` of Anthropic's Messages to vLLM).
    takes: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.unsupported or self.renamed or self.stripped)


NO_RULES = ParamRules()
# Who the caller is, for the provider's abuse monitoring or the caller's own bookkeeping: the
# gateway records them (ledger, logs) and they never change an answer, so a provider without
# them gets the request without them rather than a 400 that every SDK user would trip over.
ATTRIBUTION = frozenset({"user", "safety_identifier", "metadata"})


_ANY = object()


def unsupported_error(
    name: str, provider: str, kind: str, model: str, value: object = _ANY
) -> InvalidRequest:
    """The 400 for a parameter ``provider`` cannot honour (with ``value``: that value of it)."""
    what = "" if value is _ANY else f"{msgspec.json.encode(value).decode()[:60]} is "
    return InvalidRequest(
        f"{name}: {what}not supported by provider '{provider}' (kind {kind}); remove it, or "
        f"set models.{model}.drop_unsupported_params: true in the gateway's config to drop it",
        param=name,
        code="unsupported_parameter",
    )


def apply_rules(
    ex: Exchange,
    attempt: Attempt,
    rules: ParamRules,
    *,
    provider: str,
    kind: str,
    edits: list[tuple[str, bytes]],
) -> bytes:
    """The request body with ``rules`` applied, then ``edits`` (key, raw JSON) set."""
    members = _MEMBERS.decode(ex.body)
    drop = attempt.deployment.drop_unsupported_params
    for name in sorted(rules.unsupported & members.keys()):
        value = members.pop(name)
        if bytes(value).strip() != _NULL and not drop:
            raise unsupported_error(name, provider, kind, attempt.deployment.public_model)
    for name in rules.stripped:
        members.pop(name, None)
    for name, target in rules.renamed.items():
        if name in members:
            value = members.pop(name)
            if target not in members:
                members[target] = value
    for key, raw in edits:
        members[key] = msgspec.Raw(raw)
    return msgspec.json.encode(members)


def apply_to_request(
    request: dict[str, Any],
    rules: ParamRules,
    *,
    drop: bool,
    provider: str,
    kind: str,
    model: str,
) -> None:
    """``rules`` applied in place to a request a translation built (a dict of values)."""
    for name in sorted(rules.unsupported & request.keys()):
        if request.pop(name) is not None and not drop:
            raise unsupported_error(name, provider, kind, model)
    for name in rules.stripped:
        request.pop(name, None)
    for name, target in rules.renamed.items():
        if name in request:
            value = request.pop(name)
            request.setdefault(target, value)
