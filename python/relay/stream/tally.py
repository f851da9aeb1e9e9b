"""A stream's generated text, counted as it arrives instead of kept whole.

Local counting (a provider that reports no usage, a stream cut before its usage arrived) needs
the tokens of everything generated. Keeping a stream's whole text to count it at the end made a
worker's memory grow with the stream's length. The tally keeps the text of the latest reads; once
that passes :data:`BLOCK_CHARS`, it counts it up to the last safe cut (off the event loop) and
keeps only what follows the cut. A stream's memory is then bounded by one block and one read,
whatever its length; a stream shorter than a block (nearly all) is never counted unless its
usage is missing, exactly as before.

The safe cut is a space that begins a word after a non-space character (``"... end| next"``):
the tokenizers' pre-split (o200k_base, cl100k_base) always starts a piece there, so counting the
two sides separately gives the count of the whole. A block without such a place (one long word,
base64, some scripts) is cut at its end, which may differ from the whole by a token.
"""

from __future__ import annotations

from relay.exchange import Attempt
from relay.native import count_off_loop, counter_for

# Text kept before a block is counted: larger than nearly every real completion (about 64k
# tokens), so normal streams pay nothing; small enough to bound a long stream's memory.
BLOCK_CHARS = 256 * 1024
# How far back from the end of a block a safe cut is looked for.
_CUT_WINDOW = 64 * 1024


def safe_cut(text: str) -> int:
    """The index of the last safe cut of ``text`` (see the module docstring); ``len(text)``
    when none is found near the end."""
    end = len(text)
    floor = max(end - _CUT_WINDOW, 1)
    at = text.rfind(" ", floor, end - 1)
    while at >= floor:
        if text[at + 1].isalpha() and not text[at - 1].isspace():
            return at
        at = text.rfind(" ", floor, at)
    return end


class TextTally:
    """The generated text of one attempt's stream: what arrives is kept until a block is due,
    then counted and dropped. Fills the attempt's ``text`` (what is not counted yet) and
    ``text_tokens`` (what was)."""

    __slots__ = ("_attempt", "_pieces", "_size")

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._pieces: list[str] = []
        self._size = 0
        attempt.text = self.text

    def add(self, text: str) -> bool:
        """Keep the text of one read; True when a block is due (await :meth:`count_block`)."""
        self._pieces.append(text)
        self._size += len(text)
        return self._size > BLOCK_CHARS

    def text(self) -> str:
        """The text not counted yet."""
        pieces = self._pieces
        if len(pieces) > 1:
            pieces[:] = ["".join(pieces)]
        return pieces[0] if pieces else ""

    async def count_block(self) -> None:
        """Count the text kept, up to its last safe cut, off the loop; keep the rest."""
        text = self.text()
        cut = safe_cut(text)
        head = text[:cut]
        counter = counter_for(self._attempt.deployment.encoding)
        # The text is dropped only once counted: a cancelled count leaves it to settlement.
        self._attempt.text_tokens += await count_off_loop(len(head), counter.count, head)
        tail = text[cut:]
        self._pieces = [tail] if tail else []
        self._size = len(tail)
