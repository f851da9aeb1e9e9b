"""``kind: redact``: personal data and secrets taken out of the prompt before it leaves the
gateway, and optionally put back into the answer for the caller.

```yaml
pii:
  kind: redact
  entities: {email: placeholder, phone: mask, card: placeholder, iban: placeholder, ssn: block}
  custom: {employee_id: "EMP-[0-9]{6}"}
  restore: true
```

Detection is native (``relay._native.Redactor``: one pass of a multi-pattern regex over each
text, then checksums and ranges). Each kind's action: ``placeholder`` (``[EMAIL_1]``; the same
value gets the same placeholder in every text of the request), ``mask`` (letters and digits
become ``*``) or ``block`` (400 ``input_blocked`` in the dialect's envelope, naming the kind,
never the value). Without ``entities`` every built-in kind gets a placeholder; a custom pattern
(Rust ``regex`` syntax) gets one unless ``entities`` names it.

With ``restore``, the placeholders of a request are put back in its answer: JSON answers by
the answer hook (``restore_json``: values escaped for JSON, twice in tool-call arguments),
streams event by event by the stream hook (``StreamRestorer``: a placeholder cut across events
is restored whole; only a possible placeholder's start is held back, until the next delta).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from relay.errors import PolicyBlocked
from relay.exchange import Exchange
from relay.native import (
    PiiBlocked,
    RedactionTable,
    Redactor,
    RedactorConfigError,
    StreamRestorer,
    restore_json,
)
from relay.policies.base import Policy, PolicySpec
from relay.policies.settings import Settings
from relay.policies.texts import rewrite_texts
from relay.stage import AnswerHook, StreamHook, Tap

__all__ = ["ACTIONS", "RedactPolicy", "build", "redact_text"]

KNOWN = ("entities", "custom", "restore")
ACTIONS = ("placeholder", "mask", "block")


class _Restoring:
    """One request's restoration state: its table, and its stream's restorer once an event
    arrived."""

    __slots__ = ("restorer", "table")

    def __init__(self, table: RedactionTable) -> None:
        self.table = table
        self.restorer: StreamRestorer | None = None


class _NoCache(Mapping[str, str]):
    """The client's headers with ``cache-control: no-cache, no-store``: an answer restored
    for this caller holds its values, and the cache keys on the redacted body, which another
    caller's different values would redact the same."""

    __slots__ = ("headers",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers

    def __getitem__(self, name: str) -> str:
        if name == "cache-control":
            return "no-cache, no-store"
        return self.headers[name]

    def get(self, name: str, default: Any = None) -> Any:
        """Without Mapping's KeyError round trip (headers are read on the hot path)."""
        if name == "cache-control":
            return "no-cache, no-store"
        return self.headers.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name == "cache-control" or name in self.headers

    def __iter__(self) -> Iterator[str]:
        yield "cache-control"
        yield from (name for name in self.headers if name != "cache-control")

    def __len__(self) -> int:
        return len(self.headers) + ("cache-control" not in self.headers)


class _Restore:
    """The answer side of a policy with ``restore: true``: an answer hook and a stream hook."""

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        """The JSON answer with this request's placeholders put back."""
        state = ex.state
        held: _Restoring | None = state.get(self) if state else None
        if held is None:
            return body
        return restore_json(body, held.table) or body

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        """The event with placeholders put back (a possible placeholder's start held)."""
        state = ex.state
        held: _Restoring | None = state.get(self) if state else None
        if held is None:
            return event
        restorer = held.restorer
        if restorer is None:
            restorer = held.restorer = StreamRestorer(held.table)
        return restorer.event(event)

    def on_end(self, ex: Exchange) -> bytes:
        """What is still held, in copies of its channels' last events."""
        state = ex.state
        held: _Restoring | None = state.get(self) if state else None
        if held is None or held.restorer is None:
            return b""
        return held.restorer.flush()


class RedactPolicy:
    """One ``redact`` block."""

    answer_hook: AnswerHook | None
    stream_hook: StreamHook | None
    tap: Tap | None = None

    def __init__(self, spec: PolicySpec) -> None:
        settings = Settings(spec, KNOWN)
        self.name = spec.name
        custom = settings.mapping("custom")
        for name, pattern in custom.items():
            if not isinstance(pattern, str) or not pattern:
                settings.fail(f"custom.{name}", "expected a regular expression (a string)")
        entities = settings.mapping("entities")
        if "entities" not in spec.settings:
            entities = dict.fromkeys(Redactor.builtin_kinds(), "placeholder")
        for kind, action in entities.items():
            if action not in ACTIONS:
                settings.fail(
                    f"entities.{kind}",
                    f"unknown action {action!r} (expected one of: {', '.join(ACTIONS)})",
                )
        builtin = [(k, a) for k, a in entities.items() if k not in custom]
        patterns = [(n, p, entities.get(n, "placeholder")) for n, p in custom.items()]
        try:
            self.redactor = Redactor(builtin, patterns)
        except RedactorConfigError as exc:
            settings.fail(*str(exc).split(": ", 1))
        restore = settings.get("restore", False)
        if not isinstance(restore, bool):
            settings.fail("restore", f"expected true or false, got {restore!r}")
        self.restore = restore
        hooks = _Restore() if restore else None
        self.restoring = hooks
        self.answer_hook = hooks
        self.stream_hook = hooks

    def on_request(self, ex: Exchange) -> None:
        """Redact every text of the request; keep the placeholders when they are restored."""
        table = RedactionTable()
        redact = self.redactor.redact
        try:
            rewrite_texts(ex, lambda text: redact(text, table))
        except PiiBlocked as exc:
            ex.blocked_by = self.name
            raise PolicyBlocked(
                f"blocked by policy {self.name!r}: the prompt holds a value of kind {exc.args[0]}",
                code="input_blocked",
            ) from None
        if self.restoring is not None and len(table):
            state = ex.state
            if state is None:
                state = ex.state = {}
            state[self.restoring] = _Restoring(table)
            ex.headers = _NoCache(ex.headers)


def build(spec: PolicySpec) -> Policy:
    """The factory of ``kind: redact``."""
    return RedactPolicy(spec)


@cache
def _every_kind() -> Redactor:
    return Redactor([(kind, "placeholder") for kind in Redactor.builtin_kinds()])


def redact_text(text: str) -> str:
    """``text`` with a value of every built-in kind replaced by its typed placeholder (numbered
    within this text): what ``log_content``'s ``store: redacted`` keeps."""
    return _every_kind().redact(text, RedactionTable()) or text
