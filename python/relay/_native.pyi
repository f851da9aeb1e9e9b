"""Typed interface of the Rust extension ``relay._native``.

Everything here is implemented in ``rust/src`` (pure core modules plus the
binding layer ``py.rs``). Inputs of 8 KiB or more are processed with the GIL
released (``LocalLimiter`` always releases it around its lock;
``SharedLimitTable`` never does: it takes no lock and decides in microseconds).
"""

from collections.abc import Callable, Sequence
from typing import Protocol, Self, TypeVar, final

__all__ = [
    "ChunkedDecoder",
    "EventStreamDecoder",
    "EventStreamMessage",
    "GcraDecision",
    "InvalidChunkedBody",
    "InvalidEventStream",
    "InvalidJson",
    "InvalidStreamEvent",
    "LimitTableFull",
    "LocalLimiter",
    "NativeError",
    "OpenAIStreamScanner",
    "PiiBlocked",
    "RedactionTable",
    "Redactor",
    "RedactorConfigError",
    "SharedLimitTable",
    "SseDecoder",
    "SseEvent",
    "SseEventTooLarge",
    "StreamRestorer",
    "StreamScan",
    "TokenCounter",
    "UnknownEncoding",
    "cache_key",
    "encoding_for_model",
    "gcra",
    "monotonic",
    "restore_json",
    "splice_top_level",
    "top_level_value",
]

class NativeError(ValueError):
    """Base class of every error raised by relay._native."""

class SseEventTooLarge(NativeError):
    """One SSE event buffered more than ``max_event_bytes``."""

    scan: StreamScan | None
    """Raised by :meth:`OpenAIStreamScanner.feed`: what the read held before
    the oversized event (its ``out`` is still to be sent). None otherwise."""

class InvalidJson(NativeError):
    """A JSON body failed to parse (the message gives line, column and byte
    offset) or has the wrong shape (the message gives a JSON path)."""

class InvalidStreamEvent(NativeError):
    """An event of a stream is not valid UTF-8 or not JSON; the message says
    which (``"stream event 3 is not JSON: ..."``, counting from 1)."""

    scan: StreamScan | None
    """What the read held before the bad event (its ``out`` is still to be
    sent), always set when raised by :meth:`OpenAIStreamScanner.feed`."""

class UnknownEncoding(NativeError):
    """The tokenizer encoding name is not supported."""

class LimitTableFull(NativeError):
    """Every slot a key may use in a :class:`SharedLimitTable` (the 32 of its
    bucket) holds a limit that has not reset: the key cannot be given a cell.
    Nothing was charged."""

class InvalidEventStream(NativeError):
    """An AWS event-stream frame is corrupt: a prelude or message CRC mismatch,
    impossible lengths, a message over the limit, or a bad header. The decoder
    that raised it refuses every later read (the framing is lost)."""

    messages: list[EventStreamMessage]
    """The messages the failing read completed before the corrupt frame."""

class InvalidChunkedBody(NativeError):
    """A chunked HTTP/1.1 body is malformed: a size that is not 1 to 16 hex
    digits, a line not ended by CRLF, a line over 4096 bytes, a chunk longer
    than its size, or a trailer over 64 KiB. The decoder that raised it is
    unusable (the framing is lost)."""

@final
class ChunkedDecoder:
    """Incremental decoder of one HTTP/1.1 chunked body (RFC 9112, 7.1).

    Reads may split the framing anywhere. Chunk extensions are ignored and
    trailer fields dropped."""

    def __new__(cls) -> Self: ...
    def feed(self, data: bytes) -> bytes:
        """The payload of ``data`` (``b""`` when it held only framing).
        Nothing is taken after the body's end (see :attr:`trailing`).
        Raises InvalidChunkedBody."""
    @property
    def done(self) -> bool:
        """The body's end (the blank line after the last chunk) was read."""
    @property
    def trailing(self) -> int:
        """Bytes of the last read that came after the body's end."""

@final
class EventStreamMessage:
    """One ``application/vnd.amazon.eventstream`` message (immutable).

    Header values by wire type: booleans, integers (byte, short, int, long,
    and timestamps in milliseconds), ``bytes`` (byte arrays, UUIDs) and
    ``str`` (strings)."""

    @property
    def headers(self) -> dict[str, bool | int | bytes | str]: ...
    @property
    def payload(self) -> bytes: ...

@final
class EventStreamDecoder:
    """Incremental decoder of AWS event-stream bodies (Bedrock ConverseStream).

    Reads may split messages anywhere. Both CRC32s of a message are checked
    before any of it is returned; lengths are checked against
    ``max_message_bytes`` before waiting for the rest of a message."""

    def __new__(cls, max_message_bytes: int = 16908304) -> Self: ...
    def feed(self, chunk: bytes) -> list[EventStreamMessage]:
        """The messages ``chunk`` completes, in order. Raises
        InvalidEventStream on a corrupt frame."""
    @property
    def pending(self) -> int:
        """Bytes held for a message not complete yet."""
    @property
    def decoded(self) -> int:
        """Messages decoded so far."""

@final
class SseEvent:
    """One dispatched server-sent event (immutable; compares by value).

    ``id`` and ``retry`` are the stream's state at dispatch time, as in the
    WHATWG spec: the last event ID and the reconnection time persist across
    events until changed. An empty ``event:`` or ``id:`` value reads as None.
    """

    @property
    def event(self) -> str | None: ...
    @property
    def data(self) -> bytes: ...
    @property
    def id(self) -> str | None: ...
    @property
    def retry(self) -> int | None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class SseDecoder:
    """Incremental WHATWG event-stream decoder; chunks may split anywhere.

    After SseEventTooLarge the decoder stays failed (every feed raises) until
    close(); events completed earlier in the failing chunk are lost.
    """

    def __new__(cls, max_event_bytes: int = 1048576) -> Self: ...
    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Events completed by ``chunk``, in order."""

    def close(self) -> bool:
        """End of stream: discard any incomplete event and reset to a fresh
        decoder. Returns True if something was discarded."""

    @property
    def buffered(self) -> int:
        """Bytes held for the incomplete event (partial line, data, type)."""

@final
class StreamScan:
    """What one network read of an OpenAI-shaped SSE stream held (immutable)."""

    @property
    def out(self) -> bytes:
        """Frames to send to the client, in order: each relayed event as
        ``event: T\\n`` (only if it had a type) and one ``data: ...\\n`` line
        per line of its data, then a blank line. The data bytes are never
        re-encoded; ``id:``, ``retry:`` and comments are dropped."""

    @property
    def events(self) -> int:
        """Number of events relayed in ``out``."""

    @property
    def content(self) -> bool:
        """An event of this read carries content (the stream's commit point):
        a choice with a non-empty ``finish_reason`` or legacy ``text``, or
        whose ``delta`` or ``message`` has a non-empty ``content`` or
        ``refusal``, a non-empty ``tool_calls`` array or a non-empty
        ``function_call`` object; or a choice, ``choices`` or event of
        another shape than the documented one (relayed as is)."""

    @property
    def done(self) -> bool:
        """``data: [DONE]`` was seen. It is not in ``out``; nothing after it is read."""

    @property
    def usage(self) -> tuple[int, int, int] | None:
        """``(prompt_tokens, completion_tokens, cached_tokens)`` of the last
        non-null ``usage`` of this read (absent counts are 0; cached is
        ``prompt_tokens_details.cached_tokens``). A ``usage`` whose counts
        are not non-negative integers is ignored."""

    @property
    def error(self) -> bytes | None:
        """Raw JSON of the non-null top-level ``error`` of an event (a
        provider's mid-stream error). Scanning stopped there: ``out`` holds
        the events before it, and the error event is not relayed."""

    @property
    def text(self) -> str:
        """Generated text this read added, concatenated: per choice, the
        ``delta`` (or ``message``) ``content``, ``refusal``, each
        ``tool_calls[].function`` ``name`` and ``arguments``, the
        ``function_call`` ``name`` and ``arguments``, then the legacy
        completions ``text``. Choices of another shape add nothing. The
        scanner keeps no text across reads: a stream's text is counted as it
        arrives (:mod:`relay.stream.tally`), never held whole."""

@final
class OpenAIStreamScanner:
    """The relay's per-read work on an OpenAI-shaped SSE stream, in one call:
    decode the events, read each one's JSON (usage, content, text, error)
    and re-frame the ones to relay. Chunks may split anywhere.

    With ``strip_usage``, an event with a well-formed non-null ``usage`` and
    an absent, null or empty ``choices`` (the usage chunk forced with
    ``stream_options.include_usage``) is not relayed; its usage is still
    reported. Events with an ``event:`` type are scanned like the others.
    Inputs of 8 KiB or more are scanned with the GIL released.

    The stream ends at ``[DONE]``, at an ``error`` event, when ``feed``
    raises, or at :meth:`close`; later ``feed`` calls ignore their input and
    return an empty :class:`StreamScan`.
    """

    def __new__(cls, *, strip_usage: bool = False, max_event_bytes: int = 4194304) -> Self: ...
    def feed(self, chunk: bytes) -> StreamScan:
        """Scan one network read.

        Raises SseEventTooLarge (an event over ``max_event_bytes``) or
        InvalidStreamEvent (an event's data is not valid UTF-8 or not JSON);
        the exception's ``scan`` holds what the read held before the bad
        event, whose frames still have to be sent.
        """

    @property
    def events(self) -> int:
        """Events relayed so far."""

    def close(self) -> bool:
        """End of stream: returns True if an incomplete event was discarded
        (bytes after the end of the stream do not count). ``events`` stays
        readable."""

@final
class TokenCounter:
    """Token counting with an encoding compiled into the extension.

    The encoding is built once per process, on the first TokenCounter for it
    (with the GIL released), and shared by all instances.
    """

    def __new__(cls, encoding: str) -> Self: ...
    @property
    def encoding(self) -> str: ...
    def count(self, text: str) -> int:
        """Tokens of ``text``; special tokens are counted as plain text."""

    def count_chat(self, body: bytes) -> int:
        """Prompt tokens of an OpenAI chat request body (cookbook method: 3
        per message plus its string values, ``content`` parts of type
        ``text``, ``tool_calls`` and ``function_call`` names and arguments, 3
        priming the reply; a ``tools`` array is counted as its compact JSON
        text, approximately).

        Never fails on valid JSON nested deeper than the parser's recursion
        limit (128): a message or ``tools`` value too deep to build is
        counted as 3 + the tokens of its raw JSON text (an over-estimate,
        never 0). Raises InvalidJson for invalid JSON or a body without a
        ``messages`` array of objects."""

    def count_messages(self, body: bytes) -> int:
        """Prompt tokens of an Anthropic Messages request body, on the
        conventions of :meth:`count_chat`: 3 priming the reply; ``system`` (a
        string or blocks) as a system message (3 + ``"system"`` + its text);
        per message 3 + its ``role`` + its content: a string, or blocks by
        type (``text``; ``thinking``; ``tool_use``/``server_tool_use``: the
        ``name`` and the compact JSON of ``input``; ``tool_result``: its
        ``content``, a string or blocks; a ``document`` with a text source:
        its data; images are not counted); a ``tools`` array as its compact
        JSON text (keys sorted), approximately.

        JSON too deep to build is counted as its raw text, never 0. Raises
        InvalidJson for invalid JSON or a body without a ``messages`` array
        of objects."""

def top_level_value(body: bytes, key: str) -> bytes | None:
    """Raw bytes of the value of the top-level member ``key`` of the JSON
    object ``body`` (the last one if duplicated), None if absent. Keys
    compare after unescaping (``"mod\\u0065l"`` is ``model``; a key holding
    an unpaired surrogate escape matches no ``str``).

    ``body`` is not parsed but scanned (it is meant to have been validated
    already): raises InvalidJson, with the byte offset, for what the
    scanner walks through, and only that:

    * the frame: whitespace, one object, whitespace; members separated by
      ``,``, each a key, ``:`` and a value; no trailing comma;
    * keys, fully: terminated, no raw control character, valid escapes,
      valid UTF-8;
    * top-level numbers and ``true``/``false``/``null``, fully;
    * top-level strings: terminated, valid escapes, valid UTF-8;
    * top-level arrays and objects: brackets balanced and matched in kind,
      brackets inside strings ignored, strings terminated. Nothing else
      inside them is checked (escapes, commas, colons, scalars, control
      characters, UTF-8).

    When ``body`` is valid JSON the answer is always a JSON parser's."""

def splice_top_level(body: bytes, edits: Sequence[tuple[str, bytes]]) -> bytes:
    """``body`` with top-level members edited, without re-encoding it.

    For each ``(key, raw_json_value)``: the value of every top-level member
    ``key`` (compared after unescaping) is replaced; if there is none,
    ``"key":value`` is inserted as the first member, right after ``{``
    (inserted members in the order of ``edits``, followed by a comma if the
    object had members). If ``edits`` names a key twice the last value
    wins. Everything else stays byte for byte: whitespace, member order,
    escapes. Raises InvalidJson if a value is not exactly one JSON value
    (fully validated; whitespace around it is kept) or if ``body`` is not a
    JSON object as far as the scanner of ``top_level_value`` checks (its
    list applies here)."""

def encoding_for_model(model: str) -> str:
    """``"o200k_base"`` or ``"cl100k_base"``; unknown models get o200k_base."""

def cache_key(body: bytes, *, ignore: Sequence[str] = (), salt: bytes = b"") -> str:
    """Lowercase hex SHA-256 of the salt and the canonical JSON of ``body``
    without the top-level keys in ``ignore``. ``1.0 == 1.00`` but ``1 != 1.0``."""

@final
class GcraDecision:
    """Outcome of one GCRA step (immutable)."""

    @property
    def allowed(self) -> bool: ...
    @property
    def tat(self) -> float: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def remaining(self) -> int: ...

def gcra(
    tat: float, now: float, emission_interval: float, burst: float, cost: float = 1.0
) -> GcraDecision:
    """One GCRA step. A cost above ``burst`` is denied with retry_after=inf.
    Raises NativeError for emission_interval <= 0, burst < 1, cost < 0,
    non-finite inputs, or finite inputs whose products or sums overflow
    (``emission_interval * burst``, ``cost * emission_interval``, the new
    TAT), so that a returned TAT is always finite."""

@final
class LocalLimiter:
    """In-process keyed GCRA limiter; safe to share between threads.

    It never holds more than ``max_keys`` keys (>= 1, else NativeError).
    When a new key would exceed that, keys that are fully reset (TAT <= now)
    are dropped first; if fewer than ``max_keys // 16`` went, the keys with
    the smallest TAT (the closest to reset) are evicted down to
    ``max_keys - 1 - max_keys // 16``. An evicted key starts afresh with a
    full burst on its next check. (The slack keeps eviction amortized O(1).)
    """

    def __new__(cls, *, max_keys: int = 100000) -> Self: ...
    @property
    def max_keys(self) -> int: ...
    def check(
        self,
        key: str,
        rate: float,
        period: float,
        burst: float,
        cost: float = 1.0,
        now: float | None = None,
    ) -> GcraDecision:
        """``rate`` requests per ``period`` seconds, bursts of ``burst``.
        ``now`` defaults to :func:`monotonic`. Only allowed checks with
        cost > 0 change the state. Invalid parameters (see :func:`gcra`;
        ``rate`` and ``period`` finite and > 0) raise NativeError before
        anything is stored."""

    def refund(
        self, key: str, rate: float, period: float, cost: float, now: float | None = None
    ) -> None:
        """Give ``cost`` back (the TAT never goes below ``now``)."""

    def reset(self, key: str) -> None: ...
    def purge(self, now: float | None = None) -> int:
        """Drop keys that are fully reset (TAT <= now); returns how many."""

    def __len__(self) -> int: ...

def monotonic() -> float:
    """The clock LocalLimiter uses: CLOCK_MONOTONIC seconds, the same clock
    as ``time.monotonic()`` on Unix."""

_Cell = TypeVar("_Cell")
_Decision = TypeVar("_Decision")

class _Limit(Protocol):
    @property
    def rate(self) -> float: ...
    @property
    def period_s(self) -> float: ...
    @property
    def burst(self) -> float: ...

class _Charge(Protocol):
    """What :class:`SharedLimitTable` reads of a charge (``relay.storage.limits.Charge``):
    ``cost`` units against the cell ``key`` at ``limit.rate`` per ``limit.period_s``
    seconds, in bursts of ``limit.burst``."""

    @property
    def key(self) -> str: ...
    @property
    def limit(self) -> _Limit: ...
    @property
    def cost(self) -> float: ...

@final
class SharedLimitTable:
    """GCRA cells in POSIX shared memory (``/dev/shm/<name>`` on Linux), the
    same for every process that maps it, forked or spawned.

    A fixed table of slots in buckets of 32, each holding a key's 128-bit
    hash and its TAT, updated with compare-and-swap and no lock (see
    rust/src/shared_table.rs). The decisions are those of :func:`gcra` and
    :class:`LocalLimiter`. ``now`` defaults to :func:`monotonic`
    (CLOCK_MONOTONIC, one clock for the whole host); when given (tests), it
    must not go back. Invalid parameters raise NativeError before anything
    is charged; a key that cannot get a cell raises :class:`LimitTableFull`.
    """

    @staticmethod
    def create(name: str, slots: int) -> SharedLimitTable:
        """Make the segment ``name`` (1 to 200 of ``A-Za-z0-9._-``), mode
        0600, for at least ``slots`` cells (rounded up to buckets of 32; 1 to
        2**30). FileExistsError if the name is taken."""

    @staticmethod
    def attach(name: str) -> SharedLimitTable:
        """Map the table another process created. FileNotFoundError if there
        is none; NativeError if the segment is not such a table."""

    @staticmethod
    def unlink(name: str) -> bool:
        """Remove the name (mappings stay valid); False if there was none."""

    @property
    def name(self) -> str: ...
    @property
    def slots(self) -> int: ...
    @property
    def evictions(self) -> int:
        """Keys given the slot of a cell that had fully reset, since creation."""

    @property
    def full_refusals(self) -> int:
        """Times :class:`LimitTableFull` was raised, since creation."""

    def take(
        self,
        charges: Sequence[_Charge],
        cell: Callable[[float, float], _Cell],
        decision: Callable[[bool, tuple[_Cell, ...], float], _Decision],
        now: float | None = None,
    ) -> _Decision:
        """Charge every one of ``charges`` if all fit, else none, and answer
        ``decision(allowed, (cell(remaining, reset_after), ...), retry_after)``,
        one cell per charge (built once every cell is decided: no Python runs
        while cells are read and charged, and an exception from ``cell`` or
        ``decision`` leaves the charges made). Allowed: each
        cell after its charge, retry_after 0. Refused: each cell as it was,
        and retry_after when every refused charge would fit (inf if one never
        can: its cost is above its burst). A cost of 0 is a peek."""

    def adjust(self, charges: Sequence[_Charge], now: float | None = None) -> None:
        """Settle earlier charges: a negative cost gives back (a cell never
        goes below empty), a positive one charges over the burst. Each is its
        own change; LimitTableFull (a positive one found no cell) is raised
        after the others are made."""

    def tat(self, key: str) -> float | None:
        """The TAT stored for ``key``, None when it has no cell."""

    def __len__(self) -> int:
        """Slots holding a key (a scan of the whole table)."""

class RedactorConfigError(NativeError):
    """A redaction setting is wrong; the message starts with the setting
    (``custom.employee_id: invalid pattern ...``, ``entities.fax: unknown kind ...``)."""

class PiiBlocked(NativeError):
    """A text holds a kind whose action is ``block``; ``args[0]`` is the
    kind's name (never the value)."""

@final
class RedactionTable:
    """One request's placeholders (``[EMAIL_1]`` -> the value), shared by
    every text of the request and by the restoration of its answer."""

    def __new__(cls) -> Self: ...
    def __len__(self) -> int: ...
    def pairs(self) -> list[tuple[str, str]]:
        """(placeholder, original value) pairs, in the order made."""

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this table replaced by its value."""

@final
class Redactor:
    """A compiled set of PII detectors: the built-in kinds named in
    ``entities`` (kind, action) and ``custom`` patterns (name, regex,
    action), checked first. Actions: ``placeholder``, ``mask``, ``block``.
    One pass of one multi-pattern regex over the text finds every kind (at
    one place, custom patterns first, then the built-ins in priority order);
    texts of 8 KiB or more are scanned with the GIL released. Raises
    RedactorConfigError."""

    def __new__(
        cls,
        entities: Sequence[tuple[str, str]],
        custom: Sequence[tuple[str, str, str]] = ...,
    ) -> Self: ...
    @staticmethod
    def builtin_kinds() -> list[str]:
        """The built-in kinds, highest priority first."""

    @property
    def kinds(self) -> list[str]:
        """The kinds looked for, in priority order (custom patterns first)."""

    @property
    def patterns(self) -> list[str]:
        """The regular expressions (Rust ``regex`` syntax), in the order of ``kinds``."""

    def find(self, text: str) -> list[tuple[str, str]]:
        """(kind, value) of every value found in ``text``, in order."""

    def redact(self, text: str, table: RedactionTable) -> str | None:
        """``text`` redacted (placeholders made in ``table``), or None when
        nothing was found. Raises PiiBlocked when a blocked kind occurs."""

    def counts(self, table: RedactionTable) -> list[tuple[str, int]]:
        """Values redacted so far in ``table`` per kind (kinds with none left out)."""

def restore_json(body: bytes, table: RedactionTable) -> bytes | None:
    """A JSON answer with the placeholders of ``table`` put back (values
    escaped for JSON strings, twice inside tool-call ``arguments``), or None
    when it holds none. Works on the bytes: the answer is not re-encoded."""

@final
class StreamRestorer:
    """Puts a stream's placeholders back, one SSE frame at a time, in the
    OpenAI chat/completions, Anthropic Messages and Responses shapes. A
    delta ending with the start of a placeholder gives that tail to the
    channel's next delta; nothing else is held."""

    def __new__(cls, table: RedactionTable) -> Self: ...
    def event(self, event: bytes) -> bytes:
        """The frames to send for one frame (``event`` itself when unchanged;
        held tails of other channels are sent before it)."""

    def flush(self) -> bytes:
        """Tails still held, each in a copy of its channel's last event."""

    @property
    def idle(self) -> bool:
        """Nothing is held."""
