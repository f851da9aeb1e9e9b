"""A stream's generated text, counted as it arrives instead of kept whole.

Local counting (a provider that reports no usage, a stream cut before its usage arrived) needs
the tokens of everything generated. Keeping a stream's whole text to count it at the end made a
worker's memory grow with the stream's length. The tally keeps the text of the latest reads; once
that passes :data:`BLOCK_CHARS`, it counts it up to the last safe cut on a worker thread while
the stream goes on, and keeps only what follows the cut. A stream's memory is then bounded by
two blocks and one read, whatever its length; a stream shorter than a block (nearly all) is
never counted unless its usage is missing, exactly as before.

The safe cut is a space that begins a word after a non-space character (``"... end| next"``):
the tokenizers' pre-split (o200k_base, cl100k_base) always starts a piece there, so counting the
two sides separately gives the count of the whole. A block without such a place (one long word,
base64, some scripts) is cut at its end, which may differ from the whole by a token.
"""

from __future__ import annotations

import asyncio

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
    then counted while the stream goes on, and dropped once counted. Fills the attempt's
    ``text`` (what is not counted yet, the block being counted included) and ``text_tokens``
    (what was): the two always agree, so a settlement at any moment counts each token once."""

    __slots__ = ("_attempt", "_counting", "_flight", "_pieces", "_size")

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._pieces: list[str] = []
        self._size = 0
        self._flight = ""  # the block being counted
        self._counting: asyncio.Task[int] | None = None
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
        kept = pieces[0] if pieces else ""
        return self._flight + kept if self._flight else kept

    async def count_block(self) -> None:
        """Start counting the text kept, up to its last safe cut; keep the rest. The previous
        block's count is awaited first, so at most one block is in flight."""
        await self.drain()
        pieces = self._pieces
        text = "".join(pieces) if len(pieces) > 1 else pieces[0]
        cut = safe_cut(text)
        head, tail = text[:cut], text[cut:]
        self._pieces = [tail] if tail else []
        self._size = len(tail)
        counter = counter_for(self._attempt.deployment.encoding)
        self._flight = head
        task = asyncio.ensure_future(count_off_loop(len(head), counter.count, head))
        task.add_done_callback(self._counted)
        self._counting = task

    async def drain(self) -> None:
        """Wait for the block in flight, if any (its tokens are then in ``text_tokens``)."""
        task = self._counting
        if task is not None:
            await asyncio.wait((task,))
            self._counted(task)

    def _counted(self, task: asyncio.Task[int]) -> None:
        """On the loop, at once: the block's tokens are added and its text dropped. A count
        that failed or was cancelled keeps its text, counted at settlement instead."""
        if self._counting is not task:
            return  # already taken
        self._counting = None
        if not task.cancelled() and task.exception() is None:
            self._attempt.text_tokens += task.result()
            self._flight = ""
