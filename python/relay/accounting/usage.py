"""Usage from the provider's report, or counted locally when it reported none; cost from prices."""

from __future__ import annotations

from typing import Any

import msgspec

from relay.config.model import Pricing
from relay.exchange import Endpoint, Exchange, Usage
from relay.native import InvalidJson, counter_for

_PER_MILLION = 1_000_000.0


def cost_usd(usage: Usage, pricing: Pricing) -> float:
    """Cost in USD: uncached prompt at ``input``, cached at ``cached`` (else ``input``)."""
    cached_price = pricing.input if pricing.cached is None else pricing.cached
    uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
    return (
        uncached * pricing.input
        + usage.cached_tokens * cached_price
        + usage.completion_tokens * pricing.output
    ) / _PER_MILLION


def count_locally(ex: Exchange, encoding: str) -> Usage:
    """Count prompt and completion tokens with the native tokenizer."""
    counter = counter_for(encoding)
    try:
        if ex.endpoint is Endpoint.CHAT:
            prompt = counter.count_chat(ex.body)
        else:
            request = msgspec.json.decode(ex.body)
            field = request.get("input" if ex.endpoint is Endpoint.EMBEDDINGS else "prompt")
            prompt = _count_prompt(field, counter.count)
    except (InvalidJson, msgspec.DecodeError):
        prompt = 0
    completion = counter.count(completion_text(ex)) if ex.endpoint is not Endpoint.EMBEDDINGS else 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, counted_locally=True)


def _count_prompt(field: Any, count: Any) -> int:
    if isinstance(field, str):
        return int(count(field))
    if isinstance(field, list):
        if field and isinstance(field[0], int):
            return len(field)  # already token ids
        return sum(_count_prompt(item, count) for item in field)
    return 0


def completion_text(ex: Exchange) -> str:
    """All generated text of the response, as it was relayed."""
    return "".join(ex.completion_parts or ())


class AccountingTap:
    """Fills ``ex.usage`` (counting locally if needed) and ``ex.cost_usd`` for finished exchanges."""

    def on_finish(self, ex: Exchange) -> None:
        deployment = ex.deployment
        if deployment is None:
            return
        if ex.usage is None and ex.completion_parts is not None:
            ex.usage = count_locally(ex, deployment.encoding)
        if ex.usage is not None:
            ex.cost_usd = cost_usd(ex.usage, deployment.pricing)
