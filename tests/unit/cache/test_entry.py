"""Entries as stored (``relay.cache.entry``)."""

from __future__ import annotations

from relay.cache.entry import decode, encode
from tests.unit.cache.cases import (
    entry,
)


def test_entries_round_trip_and_damage_is_a_miss() -> None:
    assert decode(encode(entry(b"abc"))) == entry(b"abc")
    assert decode(b"\x00garbage") is None
