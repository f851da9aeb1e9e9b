"""Structured JSON logs. Never a secret: no headers, no bodies, no provider keys."""

from __future__ import annotations

import logging
import sys
import time

import msgspec

from relay.exchange import Exchange

_access = logging.getLogger("relay.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

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
        return msgspec.json.encode(entry).decode()


def configure_logging(level: str) -> None:
    """Send relay's logs to stderr as JSON lines at ``level``."""
    root = logging.getLogger("relay")
    # Always set: a forked worker inherits the main process's handler but may serve a level
    # reloaded since.
    root.setLevel(level.upper())
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.propagate = False


def log_exchange(ex: Exchange) -> None:
    """The access line of a finished proxied request (debug level until the observability work)."""
    if not _access.isEnabledFor(logging.DEBUG):
        return
    usage = ex.usage
    _access.debug(
        "request",
        extra={
            "relay": {
                "request_id": ex.request_id,
                "model": ex.model,
                "provider": ex.deployment.provider if ex.deployment else None,
                "status": ex.status,
                "error": ex.error_type,
                "stream": ex.stream,
                "truncated": ex.truncated,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else None,
                "cost_usd": ex.cost_usd,
                "latency_ms": round((time.perf_counter() - ex.started) * 1000, 3),
            }
        },
    )
