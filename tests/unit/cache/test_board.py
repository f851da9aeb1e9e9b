"""Purges across workers through the shared page (``relay.cache.board``)."""

from __future__ import annotations

import pytest

from relay.cache.board import Board, create_board, withdraw_board


def test_a_purge_posted_on_the_board_reaches_another_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env: dict[str, str] = {}
    path = create_board(env)
    try:
        one, two = Board(path), Board(path)
        seen: list[tuple[str | None, str | None]] = []
        one.post("tenanttag", None)
        one.post(None, "modeltag")
        two.apply(lambda t, m: seen.append((t, m)))
        assert seen == [("tenanttag", None), (None, "modeltag")]
        for _ in range(300):  # more than the ring holds: the reader purges everything
            one.post("x", None)
        seen.clear()
        two.apply(lambda t, m: seen.append((t, m)))
        assert seen == [(None, None)]
    finally:
        monkeypatch.setenv("RELAY_CACHE_SHM", path)
        withdraw_board()
