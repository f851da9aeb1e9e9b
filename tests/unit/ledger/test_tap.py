"""The ledger tap: the rows one finished exchange becomes, field by field."""

from __future__ import annotations

import random
from collections.abc import Sequence

from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal, Usage
from relay.ledger.records import DAY_S, AttemptRow, ContentRow, RequestRow
from relay.ledger.tap import LedgerTap, _ms
from relay.ledger.writer import Entry


class Queue:
    """Stands in for the writer: keeps what the tap puts."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def put(self, entry: Entry) -> None:
        self.entries.append(entry)


def tapped(ex: Exchange) -> tuple[RequestRow, Sequence[AttemptRow], ContentRow | None]:
    queue = Queue()
    LedgerTap(queue).on_finish(ex)  # type: ignore[arg-type]
    ((row, attempts, content),) = queue.entries
    return row, attempts, content


def test_milliseconds_are_those_of_round_to_three_places() -> None:
    """Whole microseconds divided by 1,000 are the same floats as ``round(ms, 3)``."""
    rng = random.Random(22)
    for _ in range(200_000):
        start = rng.uniform(0, 1e6)
        end = start + rng.choice((1e-4, 1e-3, 1e-2, 1.0, 60.0)) * rng.random()
        assert _ms(start, end) == round(max(end - start, 0.0) * 1000.0, 3)
    assert _ms(5.0, 4.0) == 0.0 and _ms(5.0, 5.0) == 0.0


def test_a_finished_exchange_becomes_its_rows() -> None:
    first = Deployment("openai", "gpt-4o-2024", "gpt-4o")
    second = Deployment("anthropic", "claude\x00-x", "gpt-4o")
    ex = Exchange("req\x00_1", Endpoint.CHAT, b"", {})
    ex.model, ex.deployment, ex.status, ex.stream = "gpt-4o", second, 200, True
    ex.principal = Principal(tenant="team-a", key_id="key_1", key_prefix="gw-sk-abc", use_case="x")
    t = ex.started
    ex.attempts = [
        Attempt(first, 1, 503, "server_error", t + 0.001, t + 0.002, 0.0, t + 0.0025),
        Attempt(second, 2, 200, None, t + 0.003, t + 0.004, t + 0.005, 0.0, Usage(7, 3)),
    ]
    ex.usage, ex.cost_usd, ex.finished = Usage(7, 3, 2), 0.5, t + 0.01
    ex.truncated, ex.error_type = True, "upstream_cut"
    ex.content = ("full", "hi", "hello", 2.0)
    row, attempts, content = tapped(ex)
    assert row == RequestRow(
        row.id, "req_1", row.ts, int(row.ts // DAY_S), "default", "team-a", "key_1",
        "gw-sk-abc", "x", "/chat/completions", "gpt-4o", "anthropic", "claude-x", 200,
        "upstream_cut", True, round(0.01 * 1000, 3), round(0.005 * 1000, 3), 7, 3, 2, 0.5,
        False, True, 2, 0.0,
    )  # fmt: skip
    assert row.id.startswith("lg_") and type(row) is RequestRow
    assert attempts == [
        AttemptRow(row.id, 1, "openai", "gpt-4o-2024", 503, "server_error", 1.5, 1.0, None, None),
        # The last attempt: the exchange's truncation is its error; it ran until the end.
        AttemptRow(row.id, 2, "anthropic", "claude-x", 200, "upstream_cut", 7.0, 1.0, 7, 3),
    ]
    assert all(type(a) is AttemptRow for a in attempts)
    assert content == ContentRow(row.id, row.ts, row.ts + 2 * DAY_S, "full", "hi", "hello")


def test_a_passthrough_without_attempts_or_usage() -> None:
    ex = Exchange("req_2", Endpoint.PASSTHROUGH, b"", {})
    ex.path, ex.status, ex.error_type = "/files", 404, "not_found"
    ex.finished = ex.started + 0.002
    row, attempts, content = tapped(ex)
    assert (row.endpoint, row.provider, row.deployment, row.ttft_ms) == ("/files", None, None, None)
    assert (row.prompt_tokens, row.cost_usd, row.attempts, row.latency_ms) == (0, 0.0, 0, 2.0)
    assert attempts == [] and content is None
