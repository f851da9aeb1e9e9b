"""Server-sent event framing: the one place an ``event:``/``data:`` frame is written.

A frame is the ``event:`` line, the data in ``data:`` lines and the blank line that ends it.
Data of several lines (a provider's event relayed as sent: the SSE decoder joins its ``data:``
lines with ``\\n``) goes out as several ``data:`` lines, one per line, as SSE requires: the
stream hooks split a read's frames at blank lines, so a frame ends with exactly one and holds
no other. JSON the gateway encodes itself holds no newline, and costs only the look for one.
"""

from __future__ import annotations

_DATA_LINE = b"\ndata: "
_END = b"\n\n"
_NEWLINE = 10  # ``10 in data`` is a memchr; ``b"\n" in data`` costs several times more


def frame(kind: bytes, data: bytes) -> bytes:
    """One SSE event of type ``kind`` carrying ``data``."""
    if _NEWLINE in data:
        data = data.replace(b"\n", _DATA_LINE)
    return b"".join((b"event: ", kind, _DATA_LINE, data, _END))  # one copy, not four


def frame_parts(kind: bytes, *data: bytes) -> list[bytes]:
    """The frame of :func:`frame` for the data ``b"".join(data)``, as parts for the caller to
    join with the rest of its frames: a piece as long as a whole answer is not copied once more
    for this frame."""
    for piece in data:
        if _NEWLINE in piece:
            return [frame(kind, b"".join(data))]  # each line of the whole data its own line
    return [b"event: " + kind + _DATA_LINE, *data, _END]
