"""The ledger tap: one finished exchange -> one ``requests`` row and its ``provider_attempts``.

Runs once per exchange after its last byte; it builds tuples and appends them to the writer's
queue, nothing more. Text a client chose (model, metadata, request id, path)
loses any NUL here: PostgreSQL cannot store it, and one such row would fail its whole batch.
"""

from __future__ import annotations

import time

from relay.exchange import Exchange
from relay.ids import new_id
from relay.ledger.records import DAY_S, AttemptRow, ContentRow, RequestRow, text
from relay.ledger.writer import LedgerWriter

# A NamedTuple's own constructor is a Python function taking every field by name; the rows
# are built from a tuple of all their fields in order instead (a third of the time).
_new_row = tuple.__new__


def _ms(start: float, end: float) -> float:
    """Milliseconds from ``start`` to ``end`` (at least 0), to the microsecond. ``round(x, 3)``
    formats the number through a decimal string (about 3,500 instructions); rounding whole
    microseconds and dividing gives the same float (short of a product within an ulp of a
    half microsecond) for a tenth of that."""
    elapsed = end - start
    return round(elapsed * 1_000_000.0) / 1000.0 if elapsed > 0.0 else 0.0


class LedgerTap:
    """Feeds the ledger writer."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    def on_finish(self, ex: Exchange) -> None:
        """Record the exchange (called exactly once, never blocks)."""
        now_wall, now_perf = time.time(), time.perf_counter()
        started = ex.started
        ts = now_wall - (now_perf - started)
        finished = ex.finished or now_perf
        lid = new_id("lg_")
        principal, usage, deployment = ex.principal, ex.usage, ex.deployment
        attempts = ex.attempts
        first_token = ex.first_token_at
        if not first_token and ex.stream and attempts and attempts[-1].ready_at:
            first_token = attempts[-1].ready_at
        rows = []
        last = len(attempts)
        for n, attempt in enumerate(attempts, 1):
            a_usage = attempt.usage
            error = attempt.error
            if n == last:
                a_usage = a_usage or usage
                # A stream cut after its commit point ends the exchange, not the attempt, in
                # today's relay: the attempt that was streaming is the one that failed.
                if error is None and ex.truncated:
                    error = ex.error_type
            a_started, headers_at, target = attempt.started, attempt.headers_at, attempt.deployment
            rows.append(
                _new_row(AttemptRow, (
                    lid, n, target.provider, text(target.upstream_model), attempt.status, error,
                    _ms(a_started, attempt.ended or finished),
                    _ms(a_started, headers_at) if headers_at else None,
                    a_usage.prompt_tokens if a_usage else None,
                    a_usage.completion_tokens if a_usage else None,
                ))
            )  # fmt: skip
        use_case = principal.use_case
        row = _new_row(RequestRow, (
            lid, text(ex.request_id), ts, int(ts // DAY_S), principal.organization,
            text(principal.tenant or "-"), principal.key_id, principal.key_prefix,
            text(use_case) if use_case else None, text(ex.path or ex.endpoint._value_),
            text(ex.model), deployment.provider if deployment else None,
            text(deployment.upstream_model) if deployment else None, ex.status, ex.error_type,
            ex.stream, _ms(started, finished),
            _ms(started, first_token) if first_token else None,
            usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
            usage.cached_tokens if usage else 0, ex.cost_usd or 0.0,
            bool(ex.cache_hit), ex.truncated, last, ex.cost_saved_usd,
        ))  # fmt: skip
        content = None
        kept = ex.content  # left by a log_content policy's tap (listed before this one)
        if kept is not None:
            store, prompt, completion, days = kept
            content = ContentRow(lid, ts, ts + days * DAY_S, store, prompt, completion)
        self.writer.put((row, rows, content))
