"""Writing a batch of rows when the database may refuse one of them.

A database refuses a whole batch for the sake of one value it cannot store (PostgreSQL: text
holding NUL, a number out of range): retrying that batch can never succeed, and a writer that
retries it stops for good. So a refused batch is split in halves until the refused row is alone
(about two writes per halving); that row is cleaned and tried once more, else dropped. The
other rows are written, in their order.

An outage is not a refusal: :class:`~relay.ledger.database.DatabaseUnavailable` (or anything
else) propagates, and the rows not yet written are left in ``work`` for the caller to retry,
exactly those, once the database is back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from relay.ledger.database import RowsRejected

T = TypeVar("T")


async def write_isolating(
    work: list[Sequence[T]],
    write: Callable[[Sequence[T]], Awaitable[object]],
    clean: Callable[[T], T | None],
    drop: Callable[[T, RowsRejected], None],
) -> None:
    """Write the chunks of ``work`` (a stack: the last chunk goes first), consuming it.

    ``clean(row)`` returns a copy the database may accept, or None when there is nothing left
    to clean (it must return None for its own output); ``drop(row, error)`` is told of each row
    given up. Raises what ``write`` raises other than :class:`RowsRejected`, with ``work``
    holding what is left to write.
    """
    while work:
        chunk = work[-1]
        try:
            await write(chunk)
        except RowsRejected as exc:
            work.pop()
            if len(chunk) > 1:
                half = len(chunk) // 2
                work += (chunk[half:], chunk[:half])
            elif (cleaned := clean(chunk[0])) is not None:
                work.append((cleaned,))
            else:
                drop(chunk[0], exc)
            continue
        work.pop()


def unwritten(work: list[Sequence[T]]) -> list[T]:
    """The rows left in ``work``, in the order they would have been written."""
    return [row for chunk in reversed(work) for row in chunk]
