"""``kind: guardrail``: deny lists and regular expressions on the prompt and on the answer,
and a maximum prompt size in tokens.

```yaml
guard:
  kind: guardrail
  input_deny: ["(?i)ignore (all )?previous instructions"]
  input_deny_terms: [project aurora]        # literal, case-insensitive
  output_deny: ["(?i)internal use only"]
  output_deny_terms: [confidential]
  max_prompt_tokens: 8000
```

A prompt that matches is refused before routing (400, code ``input_blocked``; too many tokens:
``prompt_too_long``). A JSON answer that matches is replaced by an error in the dialect's
envelope (400, code ``output_blocked``); a stream is ended with the dialect's error event when
the text sent so far matches (a match may span events: the last ``output_window`` characters
are kept and scanned with each new event, and the event completing the match is not sent).
Messages name the policy and the rule (``output_deny[0]``), never the matched text. Each block
is recorded as the ledger's error class and counted in ``relay_policy_blocks``.
"""

from __future__ import annotations

from collections.abc import Awaitable

from relay.errors import PolicyBlocked
from relay.exchange import Exchange
from relay.native import ON_LOOP_BYTES, TokenCounter, count_off_loop, counter_for
from relay.policies.base import Policy, PolicySpec
from relay.policies.matching import Rules
from relay.policies.settings import Settings
from relay.policies.texts import answer_texts, event_text, prompt_texts
from relay.stage import AnswerHook, StreamHook, Tap

__all__ = ["GuardrailPolicy", "build"]

KNOWN = (
    "input_deny",
    "input_deny_terms",
    "output_deny",
    "output_deny_terms",
    "max_prompt_tokens",
    "output_window",
)
DEFAULT_WINDOW = 256


def _rules(settings: Settings, patterns: str, terms: str) -> Rules:
    named = [(f"{patterns}[{i}]", p) for i, p in enumerate(settings.patterns(patterns))]
    return Rules.build(named, (terms, settings.strings(terms)))


def _count(counter: TokenCounter, texts: list[str]) -> int:
    return sum(counter.count(t) for t in texts)


def _new_window() -> list[str]:
    return [""]


class _Output:
    """The answer side: an answer hook and a stream hook."""

    def __init__(self, guard: GuardrailPolicy) -> None:
        self.guard = guard

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        """Refuse a JSON answer whose text matches."""
        guard = self.guard
        for text in answer_texts(ex, body):
            rule = guard.output.first(text)
            if rule is not None:
                raise guard.blocked(ex, "output_blocked", f"the answer matches {rule}")
        return body

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        """Pass the event, or end the stream when the text so far matches."""
        text = event_text(ex, event)
        if not text:
            return event
        guard = self.guard
        window: list[str] = ex.state_of(self, _new_window)
        seen = window[0] + text
        rule = guard.output.first(seen)
        if rule is not None:
            raise guard.blocked(ex, "output_blocked", f"the answer matches {rule}")
        window[0] = seen[-guard.window :]
        return event

    def on_end(self, ex: Exchange) -> bytes:
        """Nothing is held."""
        return b""


class GuardrailPolicy:
    """One ``guardrail`` block."""

    answer_hook: AnswerHook | None
    stream_hook: StreamHook | None
    tap: Tap | None = None

    def __init__(self, spec: PolicySpec) -> None:
        settings = Settings(spec, KNOWN)
        self.name = spec.name
        self.input = _rules(settings, "input_deny", "input_deny_terms")
        self.output = _rules(settings, "output_deny", "output_deny_terms")
        self.max_tokens = settings.positive_int("max_prompt_tokens")
        self.window = settings.positive_int("output_window") or DEFAULT_WINDOW
        self.models = spec.config.models
        output = _Output(self) if self.output else None
        self.answer_hook = output
        self.stream_hook = output

    def blocked(self, ex: Exchange, code: str, what: str) -> PolicyBlocked:
        """The refusal, recorded on the exchange for the metrics."""
        ex.blocked_by = self.name
        return PolicyBlocked(f"blocked by policy {self.name!r}: {what}", code=code)

    def on_request(self, ex: Exchange) -> Awaitable[None] | None:
        """Refuse a prompt that matches a rule or is too long (a long prompt's tokens are
        counted off the loop: then the refusal comes from the awaitable returned)."""
        if not self.input and self.max_tokens is None:
            return None
        texts = prompt_texts(ex)
        for text in texts:
            rule = self.input.first(text)
            if rule is not None:
                raise self.blocked(ex, "input_blocked", f"the prompt matches {rule}")
        limit = self.max_tokens
        if limit is None or sum(len(t) for t in texts) * 4 <= limit:
            return None
        # A token is at least one byte: a prompt of no more bytes than the limit needs no count.
        size = sum(len(t.encode()) for t in texts)
        if size <= limit:
            return None
        model = self.models.get(ex.model)
        counter = counter_for((model.encoding if model else None) or "o200k_base")
        if size <= ON_LOOP_BYTES:
            self._check_count(ex, _count(counter, texts), limit)
            return None
        return self._count_off_loop(ex, counter, texts, size, limit)

    async def _count_off_loop(
        self, ex: Exchange, counter: TokenCounter, texts: list[str], size: int, limit: int
    ) -> None:
        self._check_count(ex, await count_off_loop(size, _count, counter, texts), limit)

    def _check_count(self, ex: Exchange, tokens: int, limit: int) -> None:
        if tokens > limit:
            raise self.blocked(
                ex,
                "prompt_too_long",
                f"the prompt has {tokens} tokens, more than max_prompt_tokens ({limit})",
            )


def build(spec: PolicySpec) -> Policy:
    """The factory of ``kind: guardrail``."""
    return GuardrailPolicy(spec)
