"""OpenAI's Responses API (``POST /v1/responses``): the request the gateway validates, and the
probes it reads from a provider's own Responses answers and events.

Only fields the gateway checks or translates are declared; on a pass-through every other field
goes upstream untouched (the client's bytes are forwarded). Input items stay dicts: an item
without ``type`` is a message (the SDK's "easy" form), so they are checked by the translator,
which names the item it refuses (``input[2].type: ...``); the dialect only checks that the
members everything reads (``type``, ``role``, content parts' ``type``) are strings.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from relay.wire.openai import RequestMetadata
from relay.wire.usage import Usage


class TextFormat(Struct, frozen=True):
    """``text.format``: ``text``, ``json_object`` or ``json_schema`` (name, schema, strict)."""

    type: str = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class TextConfig(Struct, frozen=True):
    """``text``: the output format (and verbosity, passed through on native calls)."""

    format: TextFormat | None = None


class ResponsesRequest(Struct, frozen=True, kw_only=True):
    """``POST /v1/responses``."""

    # Optional: a request without one goes to routing.default_model.
    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    metadata: RequestMetadata | None = None
    store: bool | None = None
    stream: bool | None = None
    previous_response_id: str | None = None
    user: str | None = None
    # What a translated call cannot do: refused with a 400 naming it.
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None


class InputDetails(Struct, frozen=True):
    """``usage.input_tokens_details``."""

    cached_tokens: int = 0


class ResponsesUsage(Struct, frozen=True):
    """A Response's ``usage``: ``input_tokens`` counts every prompt token once, cached ones
    included (``input_tokens_details.cached_tokens``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: InputDetails | None = None


class OutputPart(Struct, frozen=True):
    """One content part of an output message (``output_text`` or ``refusal``)."""

    type: str = ""
    text: str | None = None
    refusal: str | None = None


class OutputItem(Struct, frozen=True):
    """One output item: its generated text for local counting."""

    type: str = ""
    content: list[OutputPart] | None = None
    name: str | None = None
    arguments: str | None = None

    def generated_text(self) -> str:
        """Text, refusals, and a function call's name and arguments."""
        parts = [(p.text or "") + (p.refusal or "") for p in self.content or ()]
        return "".join(parts) + (self.name or "") + (self.arguments or "")


class ResponseProbe(Struct, frozen=True):
    """What the gateway reads from a Response: usage and output text."""

    usage: ResponsesUsage | None = None
    output: list[OutputItem] | None = None


class EventProbe(Struct, frozen=True):
    """What the gateway reads from one streamed event."""

    type: str = ""
    sequence_number: int | None = None
    response: ResponseProbe | None = None
    delta: str | None = None
    item: OutputItem | None = None


RESPONSE_DECODER = msgspec.json.Decoder(ResponseProbe)
EVENT_DECODER = msgspec.json.Decoder(EventProbe)


def usage_from_wire(usage: ResponsesUsage) -> Usage:
    """The gateway's usage from a Response's ``usage``."""
    details = usage.input_tokens_details
    return Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        cached_tokens=details.cached_tokens if details is not None else 0,
    )


def usage_json(usage: Usage) -> dict[str, Any]:
    """A Response's ``usage`` from the gateway's (every prompt token once, cache reads and
    writes included, and each of them counted apart)."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }
