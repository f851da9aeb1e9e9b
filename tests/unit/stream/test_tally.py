"""A stream's text counted as it arrives: the safe cut keeps counts exact, the text kept stays
bounded."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.exchange import Attempt, Deployment
from relay.native import counter_for
from relay.stream.tally import BLOCK_CHARS, TextTally, safe_cut

WORDS = st.sampled_from(
    ["the", " ", "  ", "\n", "\n\n", "\t", "Word", "don't", "I'm", "123", "45678", ",", ".",
     "!?", "--", "(x)", "é", "日本語", "Ωmega", "🦀", "\u0301", "://", "a1b2", "'s", "_",
     "'S", "\r\n", " \n ", "\u2019", "$", "1,000", "ǅ", "ʰ", "\u00a0", "ﬁ"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(WORDS, min_size=2, max_size=60).map("".join))
def test_counts_on_both_sides_of_a_safe_cut_add_up(text: str) -> None:
    cut = safe_cut(text)
    assert 0 < cut <= len(text)
    if cut == len(text):
        return
    assert text[cut] == " " and text[cut + 1].isalpha() and not text[cut - 1].isspace()
    for encoding in ("o200k_base", "cl100k_base"):
        counter = counter_for(encoding)
        assert counter.count(text[:cut]) + counter.count(text[cut:]) == counter.count(text)


def test_no_safe_cut_means_the_end() -> None:
    assert safe_cut("a" * 100) == 100
    assert safe_cut("x  y") == 4  # the space before y follows a space
    assert safe_cut("x 1") == 3  # a digit does not begin a word piece
    assert safe_cut("one two") == 3


def test_a_long_stream_is_counted_as_it_arrives_and_kept_bounded() -> None:
    piece = " lorem ipsum, dolor: sit 42 amet\n" * 40  # ~1.3 KB per read
    reads = 3 * BLOCK_CHARS // len(piece)
    attempt = Attempt(Deployment("p", "m", "m"))
    tally = TextTally(attempt)
    kept = 0

    counter = counter_for("o200k_base")

    def consistent(sent: int) -> None:
        """Counted and uncounted text always add up to what was sent, block in flight or not."""
        assert attempt.text is not None
        assert attempt.text_tokens + counter.count(attempt.text()) == counter.count(piece * sent)

    async def stream() -> None:
        nonlocal kept
        for sent in range(1, reads + 1):
            if tally.add(piece):
                await tally.count_block()
                consistent(sent)  # a block is in flight here
            assert attempt.text is not None
            kept = max(kept, len(attempt.text()))
        await tally.drain()

    asyncio.run(stream())
    assert attempt.text_tokens > 0
    consistent(reads)
    assert attempt.text is not None and len(attempt.text()) <= BLOCK_CHARS + len(piece)
    assert kept <= 2 * BLOCK_CHARS + len(piece)  # the block being counted, and what follows
