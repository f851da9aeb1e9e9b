"""OpenAI's duration format and the headers of the tightest limit."""

from __future__ import annotations

import pytest

from relay.limits.headers import duration, ratelimit_headers
from relay.limits.rule import Meter, Metered
from relay.storage.limits import CellState, Charge, Limit


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (-1.0, "0s"),
        (0.0001, "1ms"),
        (0.12, "120ms"),
        (0.999, "999ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (59.9999, "1m0s"),
        (360.0, "6m0s"),
        (361.25, "6m1.25s"),
        (3600.0, "1h0m0s"),
        (86400.0, "24h0m0s"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def metered(key: str, meter: Meter, burst: float) -> Metered:
    return Metered(Charge(key, Limit(burst, 60.0, burst)), meter, "key")


def test_the_tightest_limit_of_each_meter() -> None:
    charges = [
        metered("a", Meter.REQUESTS, 100),
        metered("b", Meter.REQUESTS, 10),
        metered("c", Meter.TOKENS, 1000),
        metered("d", Meter.SPEND, 5),
    ]
    cells = [CellState(50.5, 30.0), CellState(9.0, 6.0), CellState(400.0, 36.0), CellState(0, 9)]
    assert ratelimit_headers(charges, cells) == [
        ("x-ratelimit-limit-requests", "10"),
        ("x-ratelimit-remaining-requests", "9"),
        ("x-ratelimit-reset-requests", "6s"),
        ("x-ratelimit-limit-tokens", "1000"),
        ("x-ratelimit-remaining-tokens", "400"),
        ("x-ratelimit-reset-tokens", "36s"),
    ]


def test_equal_remaining_takes_the_longer_reset_and_spend_alone_has_none() -> None:
    charges = [metered("a", Meter.REQUESTS, 5), metered("b", Meter.REQUESTS, 50)]
    cells = [CellState(0.0, 12.0), CellState(0.0, 1.2)]
    assert ratelimit_headers(charges, cells)[0] == ("x-ratelimit-limit-requests", "5")
    assert ratelimit_headers([metered("d", Meter.SPEND, 5)], [CellState(1, 1)]) == []
