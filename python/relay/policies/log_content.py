"""``kind: log_content``: the prompt and completion text of each request, kept in the ledger's
``request_content`` table (not at all by default), redacted or in full.

```yaml
audit:
  kind: log_content
  store: redacted            # none (default) | redacted | full
  content_retention_days: 7  # default 30
  max_chars: 100000          # per side; longer text is cut, marked "[truncated]"
```

The text is what went upstream (after every policy of the chain) and what the client received (after the answer hooks). It is gathered as the stream passes (bounded by
``max_chars``) and put on the exchange by a tap after the last byte; the ledger's tap writes
it with the request's row through the ledger's batched writer, never per request, and never
into the access log. ``GET /admin/requests/{id}`` shows it to admins. ``redacted`` runs the
redact kind's redaction (``relay.policies.redact.redact_text``) over both sides.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from relay.exchange import Exchange
from relay.policies.base import Policy, PolicySpec
from relay.policies.settings import Settings
from relay.policies.texts import answer_texts, event_text, prompt_texts
from relay.stage import AnswerHook, StreamHook, Tap

__all__ = ["LogContentPolicy", "build"]

KNOWN = ("store", "content_retention_days", "max_chars")
STORES = ("none", "redacted", "full")
DEFAULT_DAYS = 30.0
DEFAULT_MAX_CHARS = 100_000
TRUNCATED = "[truncated]"
SEP = "\n\n"
# The redact kind's redaction of a text for storage (every built-in entity kind replaced by
# its typed placeholder): what ``store: redacted`` uses.
REDACTION = "relay.policies.redact:redact_text"


def _redaction(settings: Settings) -> Callable[[str], str]:
    module, _, name = REDACTION.partition(":")
    try:
        found: Callable[[str], str] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        settings.fail("store", f"'redacted' needs the redact kind's {REDACTION}")
        raise  # not reached: fail raises
    return found


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + TRUNCATED


class _Completion:
    """Gathers a stream's text, at most ``max_chars`` of it, per request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        """Observe: keep the event's text (up to the limit, and one character more so the cut
        is marked)."""
        text = event_text(ex, event)
        if text:
            kept: list[str] = ex.state_of(self, lambda: [""])
            if len(kept[0]) <= self.limit:
                kept[0] = (kept[0] + text)[: self.limit + 1]
        return event

    def on_end(self, ex: Exchange) -> bytes:
        """Nothing is held."""
        return b""

    def text(self, ex: Exchange) -> str | None:
        """What the stream carried, if it was seen here."""
        state = ex.state
        kept = state.get(self) if state else None
        return kept[0] if kept else None


class _Tap:
    def __init__(self, policy: LogContentPolicy) -> None:
        self.policy = policy

    def on_finish(self, ex: Exchange) -> None:
        """Leave the texts on the exchange for the ledger's tap."""
        policy = self.policy
        limit = policy.max_chars
        prompt = _cut(SEP.join(prompt_texts(ex)), limit)
        if ex.stream:
            completion = policy.completion.text(ex) or ""
        elif ex.answer_body is not None:
            completion = SEP.join(answer_texts(ex, ex.answer_body))
        else:
            completion = ""
        completion = _cut(completion, limit)
        redact = policy.redact
        if redact is not None:
            prompt, completion = redact(prompt), redact(completion)
        ex.content = (policy.store, prompt, completion, policy.days)


class LogContentPolicy:
    """One ``log_content`` block (``store: none`` costs nothing: no hook, no tap)."""

    answer_hook: AnswerHook | None = None
    stream_hook: StreamHook | None
    tap: Tap | None

    def __init__(self, spec: PolicySpec) -> None:
        settings = Settings(spec, KNOWN)
        self.name = spec.name
        self.store = settings.choice("store", STORES, "none")
        days = settings.get("content_retention_days", DEFAULT_DAYS)
        if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0:
            settings.fail("content_retention_days", f"expected a positive number, got {days!r}")
        self.days = float(days)
        self.max_chars = settings.positive_int("max_chars") or DEFAULT_MAX_CHARS
        self.redact = _redaction(settings) if self.store == "redacted" else None
        if self.store != "none" and spec.config.database.url == "none":
            settings.fail("store", "content is kept in the ledger: database.url is none")
        self.completion = _Completion(self.max_chars)
        keep = self.store != "none"
        self.stream_hook = self.completion if keep else None
        self.tap = _Tap(self) if keep else None

    def on_request(self, ex: Exchange) -> None:
        """Nothing to do before routing."""


def build(spec: PolicySpec) -> Policy:
    """The factory of ``kind: log_content``."""
    return LogContentPolicy(spec)
