"""Logs: every line the gateway writes, in one format, and the access line of each request.

One handler on the root logger writes to stderr, as JSON (one object per line) or as readable
text (``server.log_format``), so third-party loggers (asyncpg, aiohttp, asyncio's "exception
was never retrieved") come out in the same format as Relay's own, and granian's too (see
:func:`granian_log_config`). A traceback is a field of its line (``exc``), never lines of its
own. Never a secret: no headers, no bodies, no provider or gateway keys (a key's visible
prefix only).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import sys
import threading
import time
from types import TracebackType
from typing import Any

import msgspec

from relay.background import lower_priority
from relay.exchange import Endpoint, Exchange

_access = logging.getLogger("relay.access")
_encode = msgspec.json.Encoder().encode

FORMATS = ("json", "text")
# Third-party libraries speak at this level or above (their info lines are not ours to show).
THIRD_PARTY_LEVEL = logging.WARNING


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the record's
    ``relay`` fields, and ``exc`` (the traceback, one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "relay", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _encode(entry).decode()


class TextFormatter(logging.Formatter):
    """One readable line: ``2026-12-03T12:00:00.123Z INFO relay.access request key=value ...``;
    values with spaces, quotes or line breaks are quoted as JSON strings (a traceback too), so
    a line is always one line."""

    def format(self, record: logging.LogRecord) -> str:
        extra = getattr(record, "relay", None)
        line = text_line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            extra if isinstance(extra, dict) else None,
        )
        parts = [line]
        if record.exc_info:
            parts.append("exc=" + _encode(self.formatException(record.exc_info)).decode())
        if record.stack_info:
            parts.append("stack=" + _encode(self.formatStack(record.stack_info)).decode())
        return " ".join(parts)


def text_line(
    created: float, level: str, logger: str, message: str, fields: dict[str, object] | None
) -> str:
    """The text format's line (see :class:`TextFormatter`)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    parts = [f"{stamp}.{int(created % 1 * 1000):03d}Z", level, logger, _one_line(message)]
    if fields:
        parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
    return " ".join(parts)


def _one_line(text: str) -> str:
    return _encode(text).decode() if "\n" in text or "\r" in text else text


def _text_value(value: object) -> str:
    if isinstance(value, str):
        if value and not any(c in value for c in ' "=\n\r\t'):
            return value
        return _encode(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _encode(value).decode()


def formatter_for(fmt: str) -> logging.Formatter:
    """The formatter of ``server.log_format``."""
    return TextFormatter() if fmt == "text" else JsonFormatter()


class RelayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The gateway's one handler (on the root logger), writing to stderr. Its own class so
    that configuring twice (a forked worker, a reload) finds it rather than adding another."""

    def __init__(self, fmt: str = "json") -> None:
        super().__init__(sys.stderr)
        self.setFormatter(formatter_for(fmt))


def json_handler() -> RelayHandler:
    """The handler in JSON (granian's log configuration builds it by this name)."""
    return RelayHandler("json")


def text_handler() -> RelayHandler:
    """The handler in text (granian's log configuration builds it by this name)."""
    return RelayHandler("text")


def configure_logging(level: str, fmt: str = "json") -> None:
    """Every logger of the process to stderr in ``fmt``; Relay's at ``level``, third-party
    libraries' at warning and above (or ``level`` when that is higher)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, RelayHandler)), None)
    if handler is None:
        # Plain handlers someone installed first (logging.basicConfig) would print the same
        # records a second time in their own format.
        for other in list(root.handlers):
            if type(other) is logging.StreamHandler:
                root.removeHandler(other)
        handler = RelayHandler(fmt)
        root.addHandler(handler)
    elif not isinstance(handler.formatter, type(formatter_for(fmt))):
        handler.setFormatter(formatter_for(fmt))
    relay = logging.getLogger("relay")
    # Always set: a forked worker inherits the main process's loggers but may serve a level
    # reloaded since.
    relay.setLevel(level.upper())
    for old in [h for h in relay.handlers if isinstance(h, logging.StreamHandler)]:
        relay.removeHandler(old)  # before this module's root handler, Relay had its own
    relay.propagate = True
    root.setLevel(_root_level(level))
    # warnings.warn(...) and uncaught exceptions (main thread, other threads) become records
    # of this handler rather than bare tracebacks on stderr.
    logging.captureWarnings(True)
    # Neither format shows the caller's file and line, the thread or the process: skip
    # collecting them for every record (the logging HOWTO's "Optimization"; finding the
    # caller walks the stack, a few microseconds on each access line).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread


def _root_level(level: str) -> int:
    """Third-party loggers: warnings and above, or Relay's level when that is higher."""
    named: int = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    return max(named, THIRD_PARTY_LEVEL)


def _uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("relay").critical("uncaught exception", exc_info=(kind, value, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("relay").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def granian_log_config(fmt: str, level: str = "info") -> dict[str, Any]:
    """granian's ``log_dictconfig``: its loggers (``_granian``, the Rust side's, and
    ``granian.access``) propagate to the root logger, whose handler is the gateway's, in the
    main process and in every worker (made here too: a spawned worker logs before the app
    configures anything)."""
    factory = f"{__name__}.{'text_handler' if fmt == 'text' else 'json_handler'}"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {},
        "handlers": {"relay": {"()": factory}},
        "root": {"handlers": ["relay"], "level": logging.getLevelName(_root_level(level))},
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
        },
    }


# -- the access line ---------------------------------------------------------------------------


def error_class(ex: Exchange) -> str | None:
    """What went wrong with a request, in a word: the failed attempt's class (``timeout``,
    ``rate_limited``, ``server_error``, ...), ``client_gone``, ``rejected`` (the gateway
    refused it: a 4xx of its own) or ``gateway``; None for a success."""
    if ex.status < 400 and not ex.truncated:
        return None
    if ex.client_gone or ex.status == 499:
        return "client_gone"
    attempts = ex.attempts
    if attempts:
        last = attempts[-1]
        if last.error is not None or last.error_class is not None:
            return last.error_class or last.error
    return "rejected" if ex.status < 500 else "gateway"


def cache_status(ex: Exchange) -> str | None:
    """The cache's decision on this request (``x-relay-cache``), if a cache stage took one."""
    for name, value in ex.reply_headers:
        if name == "x-relay-cache":
            return str(value)
    return None


def endpoint_of(ex: Exchange) -> str:
    """The route: ``/v1/chat/completions``, or the pass-through route as requested."""
    endpoint = ex.endpoint
    if endpoint is Endpoint.PASSTHROUGH:
        return "/v1" + ex.path
    return _ROUTES[endpoint]


_ROUTES: dict[Endpoint, str] = {e: f"/v1{e.value}" for e in Endpoint}

# The access line's fields, in the order they are written.
ACCESS_FIELDS = (
    "request_id",
    "method",
    "endpoint",
    "tenant",
    "key_prefix",
    "use_case",
    "model",
    "provider",
    "upstream_model",
    "status",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "upstream_ms",
    "overhead_ms",
    "cache",
    "attempts",
    "error",
    "error_class",
    "truncated",
)


def access_fields(ex: Exchange) -> dict[str, object]:
    """The access line's fields for one finished request (no text, no secret)."""
    return dict(zip(ACCESS_FIELDS, access_values(ex), strict=True))


def _thousandths(value: float) -> float:
    """``value`` to three decimals. ``round(x, 3)`` goes through a decimal string (a quarter of
    a microsecond, four times per access line); rounding the thousandths and dividing gives
    the same float but where ``x`` lies within an ulp of a half thousandth."""
    return round(value * 1000.0) / 1000.0


def access_values(ex: Exchange) -> tuple[Any, ...]:
    """The values of :data:`ACCESS_FIELDS` for one finished request, in that order."""
    usage = ex.usage
    principal = ex.principal
    attempt = ex.answer
    deployment = attempt.deployment if attempt is not None else ex.deployment
    end = ex.finished or time.perf_counter()
    total = max(end - ex.started, 0.0)
    upstream = ex.upstream_seconds
    attempts = ex.attempts
    return (
        ex.request_id,
        ex.method,
        endpoint_of(ex),
        principal.tenant,
        principal.key_prefix,
        principal.use_case,
        ex.model or None,
        deployment.provider if deployment else None,
        deployment.upstream_model if deployment else None,
        ex.status,
        ex.stream,
        usage.prompt_tokens if usage else None,
        usage.completion_tokens if usage else None,
        ex.cost_usd,
        _thousandths(total * 1000.0),
        _thousandths(upstream * 1000.0),
        _thousandths(max(total - upstream, 0.0) * 1000.0),
        cache_status(ex) if ex.reply_headers else None,
        len(attempts),
        ex.error_type,
        # error_class(ex)'s first test inline: nearly every request succeeds.
        error_class(ex) if ex.status >= 400 or ex.truncated else None,
        ex.truncated,
    )


class _JsonLine(msgspec.Struct):
    """The JSON access line: the record's four fields, then :data:`ACCESS_FIELDS`, encoded
    as the object a dict of them would be (the same keys in the same order), without a dict
    made and merged per request."""

    ts: float
    level: str
    logger: str
    msg: str
    request_id: str
    method: str
    endpoint: str
    tenant: str
    key_prefix: str | None
    use_case: str | None
    model: str | None
    provider: str | None
    upstream_model: str | None
    status: int
    stream: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_ms: float
    upstream_ms: float
    overhead_ms: float
    cache: str | None
    attempts: int
    error: str | None
    error_class: str | None
    truncated: bool


assert _JsonLine.__struct_fields__[4:] == ACCESS_FIELDS


class AccessLog:
    """The access line of every request, at ``info`` on ``relay.access`` (a tap: written once
    the client has its last byte). ``server.access_log: false`` leaves it out of the taps.

    The line is rendered here, in the handler's format, and handed to :data:`ACCESS_LINES`
    rather than to the logging machinery: a record, its handler's lock and a write to stderr
    per request cost about 11 us of the event loop's CPU (callgrind: 100,000 instructions),
    and a write to a pipe whose reader is slow (a container's log collector) would stop the
    loop. Rendered directly it costs a few microseconds, and a thread writes the lines.
    ``relay.access`` set above ``info`` still silences it.
    """

    __slots__ = ("_lines", "_text")

    def __init__(self, fmt: str = "json", lines: BufferedLines | None = None) -> None:
        self._text = fmt == "text"
        self._lines = lines or ACCESS_LINES

    def on_finish(self, ex: Exchange) -> None:
        if not _access.isEnabledFor(logging.INFO):
            return
        now = time.time()
        if ex.finished:  # the line may be written a little after (relay.handlers.batched)
            now -= time.perf_counter() - ex.finished
        values = access_values(ex)
        if self._text:
            parts = [text_line(now, "INFO", "relay.access", "request", None)]
            parts.extend(
                f"{k}={_text_value(v)}"
                for k, v in zip(ACCESS_FIELDS, values, strict=True)
                if v is not None
            )
            line = " ".join(parts).encode()
        else:
            line = _encode(_JsonLine(_thousandths(now), "info", "relay.access", "request", *values))
        self._lines.put(line + b"\n")


class BufferedLines:
    """Lines for stderr, written by a thread of their own every :attr:`interval_s` (or sooner
    when :attr:`max_pending` wait), so the event loop never waits on stderr.

    Each wake costs the thread about 100 us of CPU however few lines it writes: the wait, and
    taking the GIL back from a busy event loop after the write. Every 50 ms that was 2 us an
    access line at 1,100 requests a second; every 0.25 s it is 0.8 us (benches/README.md,
    "Access lines, the config watch and the chunk scanner"). A batch is
    written under the log handler's lock, so it never lands inside another line. The thread
    starts with the first line (in each worker: a forked process has no threads); what is
    pending is written at :meth:`close` and at exit."""

    def __init__(self, fd: int = 2, interval_s: float = 0.25, max_pending: int = 1024) -> None:
        self.fd = fd
        self.interval_s = interval_s
        self.max_pending = max_pending
        # deque: append and popleft are atomic, so the loop thread and the writer share it
        # without a lock.
        self._pending: collections.deque[bytes] = collections.deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def put(self, line: bytes) -> None:
        """Queue one line (with its newline)."""
        pending = self._pending
        pending.append(line)
        if self._pid != _pid:
            self._start()
        elif len(pending) >= self.max_pending:
            self._wake.set()

    def _start(self) -> None:
        self._pid = _pid
        self._thread = threading.Thread(target=self._run, name="relay-log", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        lower_priority()
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write what is pending now (any thread)."""
        pending = self._pending
        count = len(pending)
        if not count:
            return
        data = b"".join([pending.popleft() for _ in range(count)])
        handler = next(
            (h for h in logging.getLogger().handlers if isinstance(h, RelayHandler)), None
        )
        if handler is not None:
            handler.acquire()
        try:
            if handler is not None:
                handler.flush()  # what the handler wrote before goes first
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            pass  # stderr closed: nowhere to write a line about it either
        finally:
            if handler is not None:
                handler.release()

    def close(self) -> None:
        """Write what is pending (the worker is stopping)."""
        self.flush()


# This process's id, kept up to date across forks: ``os.getpid()`` is a system call, and
# ``put`` asks for every line whether the writer thread is this process's.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)

# The process's access lines (every worker has its own writer thread).
ACCESS_LINES = BufferedLines()
