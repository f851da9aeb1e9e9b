"""What both directions of the OpenAI <-> Anthropic translation share: stop reasons, image
sources, tool choices, reasoning effort and thinking budgets, and a strict JSON decode whose
errors name the field."""

from __future__ import annotations

from typing import Any

import msgspec

from relay.errors import InvalidRequest

# Anthropic stop_reason -> OpenAI finish_reason.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# OpenAI's reasoning_effort -> the budget_tokens of Anthropic's extended thinking ("none":
# no thinking). Anthropic's minimum budget is 1024; each level doubles or quadruples the last.
THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 32768,
}
EFFORTS = ("none", *THINKING_BUDGETS)
# And back, a budget to the nearest level at or below it, among the three levels every
# OpenAI-shaped reasoning model takes (a budget under "medium"'s is "low").
_EFFORT_FLOORS = ((THINKING_BUDGETS["high"], "high"), (THINKING_BUDGETS["medium"], "medium"))

decode = msgspec.json.decode
encode = msgspec.json.encode


def effort_for_budget(budget: int) -> str:
    """The ``reasoning_effort`` for a thinking ``budget_tokens``."""
    for floor, effort in _EFFORT_FLOORS:
        if budget >= floor:
            return effort
    return "low"


def finish_reason(stop_reason: str | None) -> str | None:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason``."""
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def stop_reason(finish: str | None) -> str:
    """Anthropic's ``stop_reason`` for an OpenAI ``finish_reason``."""
    return STOP_REASONS.get(finish or "stop", "end_turn")


def json_object(raw: str, where: str) -> Any:
    """Tool arguments as JSON (an object); a 400 naming ``where`` otherwise."""
    if not raw.strip():
        return {}
    try:
        value = decode(raw)
    except msgspec.DecodeError:
        raise InvalidRequest(
            f"{where}: expected a JSON object, got {raw[:40]!r}", param=where
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: expected a JSON object", param=where)
    return value


def image_source(url: str, where: str) -> dict[str, str]:
    """An OpenAI ``image_url.url`` (a ``data:`` URL or an http(s) URL) as an Anthropic source."""
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        media_type, _, encoding = header[5:].partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise InvalidRequest(
                f"{where}: expected a base64 data URL (data:image/png;base64,...)", param=where
            )
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise InvalidRequest(f"{where}: expected an http(s) or data: URL", param=where)


def image_url(source: Any, where: str) -> str:
    """An Anthropic image ``source`` as an OpenAI ``image_url.url``."""
    if isinstance(source, dict):
        kind = source.get("type")
        if kind == "base64":
            return f"data:{source.get('media_type')};base64,{source.get('data')}"
        if kind == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
    raise InvalidRequest(f"{where}: expected a base64 or url image source", param=where)


def text_of(content: Any) -> str:
    """The text of a string or of an array of text parts/blocks (others are skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and "text" in part
        )
    return ""
