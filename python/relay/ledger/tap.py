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


def _ms(start: float, end: float) -> float:
    return round(max(end - start, 0.0) * 1000.0, 3)


class LedgerTap:
    """Feeds the ledger writer."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    def on_finish(self, ex: Exchange) -> None:
        """Record the exchange (called exactly once, never blocks)."""
        now_wall, now_perf = time.time(), time.perf_counter()
        ts = now_wall - (now_perf - ex.started)
        finished = ex.finished or now_perf
        lid = new_id("lg_")
        principal, usage, deployment = ex.principal, ex.usage, ex.deployment
        attempts = ex.attempts
        first_token = ex.first_token_at
        if not first_token and ex.stream and attempts and attempts[-1].ready_at:
            first_token = attempts[-1].ready_at
        rows = []
        for n, attempt in enumerate(attempts, 1):
            a_usage = attempt.usage
            error = attempt.error
            if n == len(attempts):
                a_usage = a_usage or usage
                # A stream cut after its commit point ends the exchange, not the attempt, in
                # today's relay: the attempt that was streaming is the one that failed.
                if error is None and ex.truncated:
                    error = ex.error_type
            rows.append(
                AttemptRow(
                    lid,
                    n,
                    attempt.provider,
                    text(attempt.upstream_model),
                    attempt.status,
                    error,
                    _ms(attempt.started, attempt.ended or finished),
                    _ms(attempt.started, attempt.headers_at) if attempt.headers_at else None,
                    a_usage.prompt_tokens if a_usage else None,
                    a_usage.completion_tokens if a_usage else None,
                )
            )
        use_case = principal.use_case
        row = RequestRow(
            lid, text(ex.request_id), ts, int(ts // DAY_S), principal.organization,
            text(principal.tenant or "-"), principal.key_id, principal.key_prefix,
            text(use_case) if use_case else None, text(ex.path or ex.endpoint.value),
            text(ex.model), deployment.provider if deployment else None,
            text(deployment.upstream_model) if deployment else None, ex.status, ex.error_type,
            ex.stream, _ms(ex.started, finished),
            _ms(ex.started, first_token) if first_token else None,
            usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
            usage.cached_tokens if usage else 0, ex.cost_usd or 0.0,
            bool(ex.cache_hit), ex.truncated, len(attempts), ex.cost_saved_usd,
        )  # fmt: skip
        content = None
        kept = ex.content  # left by a log_content policy's tap (listed before this one)
        if kept is not None:
            store, prompt, completion, days = kept
            content = ContentRow(lid, ts, ts + days * DAY_S, store, prompt, completion)
        self.writer.put((row, rows, content))
