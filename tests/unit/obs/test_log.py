"""Log lines: JSON objects or readable text, one line each whatever the message or the
traceback holds; third-party loggers through the same handler; the access line's fields."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator

import pytest

from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal, Usage
from relay.obs.log import (
    AccessLog,
    BufferedLines,
    JsonFormatter,
    RelayHandler,
    TextFormatter,
    access_fields,
    configure_logging,
    error_class,
    granian_log_config,
)


def record(msg: str = "hello", exc: bool = False, **fields: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("asyncpg.pool", logging.WARNING, __file__, 1, msg, (), exc_info)
    if fields:
        rec.relay = fields
    return rec


def test_json_lines_hold_tracebacks_in_a_field() -> None:
    line = JsonFormatter().format(record("two\nlines", exc=True, request_id="r1"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "two\nlines" and entry["logger"] == "asyncpg.pool"
    assert entry["level"] == "warning" and entry["request_id"] == "r1"
    assert "Traceback" in entry["exc"] and "line two" in entry["exc"]


def test_text_lines_are_one_line_with_quoted_values() -> None:
    line = TextFormatter().format(
        record("two\nlines", exc=True, request_id="r1", model="a b", n=3, ok=True, none=None)
    )
    assert "\n" not in line
    stamp, level, logger, rest = line.split(" ", 3)
    assert stamp.endswith("Z") and level == "WARNING" and logger == "asyncpg.pool"
    assert rest.startswith('"two\\nlines" request_id=r1 model="a b" n=3 ok=true exc="Traceback')
    assert "none=" not in line


@pytest.fixture
def root_restored() -> Iterator[None]:
    root, relay = logging.getLogger(), logging.getLogger("relay")
    saved = (list(root.handlers), root.level, list(relay.handlers), relay.level, relay.propagate)
    hooks = (sys.excepthook, __import__("threading").excepthook)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    relay.handlers[:], relay.level, relay.propagate = saved[2], saved[3], saved[4]
    sys.excepthook, __import__("threading").excepthook = hooks
    logging.captureWarnings(False)


def test_one_root_handler_for_every_logger(
    root_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", "json")
    configure_logging("info", "json")  # a forked worker configures again: still one handler
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, RelayHandler)]
    assert len(handlers) == 1
    logging.getLogger("relay.x").info("ours")
    logging.getLogger("asyncpg.pool").info("their chatter")  # below warning: not shown
    logging.getLogger("asyncpg.pool").warning("theirs")
    configure_logging("info", "text")  # a reload may change the format
    logging.getLogger("asyncio").error("never retrieved")
    out = stream.getvalue().splitlines()
    assert [json.loads(x)["msg"] for x in out[:2]] == ["ours", "theirs"]
    assert " ERROR asyncio never retrieved" in out[2] and len(out) == 3


def test_granian_log_config_routes_granian_to_the_root_handler(root_restored: None) -> None:
    import logging.config

    logging.config.dictConfig(granian_log_config("text"))
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, RelayHandler) and isinstance(handler.formatter, TextFormatter)
    assert logging.getLogger("_granian").propagate and not logging.getLogger("_granian").handlers


def test_access_fields_name_the_request_without_its_text() -> None:
    deployment = Deployment("fake", "gpt-4o-mini-2024", "gpt-4o-mini")
    ex = Exchange("req_9", Endpoint.CHAT, b'{"secret text"}', {"authorization": "Bearer sk-x"})
    ex.model, ex.status, ex.cost_usd = "gpt-4o-mini", 200, 0.5
    ex.principal = Principal(tenant="acme", key_prefix="gw-sk-abcd", use_case="support")
    failed = Attempt(deployment, 0, error="upstream_error", error_class="timeout")
    failed.started, failed.ended = ex.started, ex.started + 0.010
    answered = Attempt(deployment, 1, status=200)
    answered.started, answered.ready_at = ex.started + 0.010, ex.started + 0.030
    ex.attempts = [failed, answered]
    ex.answer, ex.deployment = answered, deployment
    ex.usage = Usage(prompt_tokens=5, completion_tokens=7)
    ex.reply_headers.append(("x-relay-cache", "miss"))
    ex.finished = ex.started + 0.040
    fields = access_fields(ex)
    assert fields["latency_ms"] == pytest.approx(40.0)
    assert fields["upstream_ms"] == pytest.approx(30.0)
    assert fields["overhead_ms"] == pytest.approx(10.0)
    assert {k: fields[k] for k in ("tenant", "key_prefix", "use_case", "cache", "attempts")} == {
        "tenant": "acme",
        "key_prefix": "gw-sk-abcd",
        "use_case": "support",
        "cache": "miss",
        "attempts": 2,
    }
    assert (fields["provider"], fields["upstream_model"]) == ("fake", "gpt-4o-mini-2024")
    assert (fields["prompt_tokens"], fields["completion_tokens"], fields["cost_usd"]) == (5, 7, 0.5)
    assert fields["error_class"] is None  # the request succeeded
    text = json.dumps(fields)
    assert "secret text" not in text and "sk-x" not in text
    ex.status = 504
    ex.answer = None
    ex.attempts = [failed]
    assert error_class(ex) == "timeout"


def _finished_exchange(rid: str) -> Exchange:
    ex = Exchange(rid, Endpoint.PASSTHROUGH, b"", {})
    ex.path, ex.method, ex.status = "/files", "GET", 404
    ex.finished = ex.started
    return ex


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


@pytest.fixture
def access_at_info() -> Iterator[logging.Logger]:
    """``relay.access`` at info, as ``configure_logging`` sets Relay's loggers."""
    access = logging.getLogger("relay.access")
    access.setLevel(logging.INFO)
    yield access
    access.setLevel(logging.NOTSET)


@pytest.mark.usefixtures("access_at_info")
def test_the_access_line_is_written_at_info_by_a_thread_in_batches() -> None:
    read, write = os.pipe()
    lines = BufferedLines(write, interval_s=60, max_pending=1000)
    log = AccessLog("json", lines)
    for n in range(3):
        log.on_finish(_finished_exchange(f"req_{n}"))
    # Nothing is written on the caller's thread; the writer thread waits for its interval.
    assert _read_all(read) == b""
    lines.close()
    written = _read_all(read).decode().splitlines()
    entries = [json.loads(line) for line in written]
    assert [e["request_id"] for e in entries] == ["req_0", "req_1", "req_2"]
    first = entries[0]
    assert (first["level"], first["logger"], first["msg"]) == ("info", "relay.access", "request")
    assert first["endpoint"] == "/v1/files" and first["error_class"] == "rejected"
    # Past max_pending the thread is woken at once.
    quick = BufferedLines(write, interval_s=60, max_pending=2)
    AccessLog("json", quick).on_finish(_finished_exchange("req_a"))
    AccessLog("json", quick).on_finish(_finished_exchange("req_b"))
    got = b""
    deadline = time.monotonic() + 10  # woken, it writes within milliseconds; 60 s if not
    while b"req_b" not in got and time.monotonic() < deadline:
        got += _read_all(read)
        time.sleep(0.01)
    assert got.count(b"\n") == 2 and b"req_a" in got
    os.close(read)
    os.close(write)


def test_the_access_line_in_text_and_silenced_above_info(access_at_info: logging.Logger) -> None:
    read, write = os.pipe()
    lines = BufferedLines(write, interval_s=60)
    AccessLog("text", lines).on_finish(_finished_exchange("req_t"))
    lines.close()
    (line,) = _read_all(read).decode().splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO relay\.access request ", line)
    assert "request_id=req_t" in line and "endpoint=/v1/files" in line
    access_at_info.setLevel(logging.WARNING)
    try:
        AccessLog("json", lines).on_finish(_finished_exchange("req_quiet"))
        lines.close()
        assert _read_all(read) == b""
    finally:
        os.close(read)
        os.close(write)
