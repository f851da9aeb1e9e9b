"""Usage from the provider's report, or counted locally when it reported none; cost from prices.

Local counting runs the native tokenizer, about 0.4 us per byte: a large prompt or completion
is counted on a worker thread (the extension releases the GIL) so the event loop never stalls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from relay.config.model import Pricing
from relay.exchange import Attempt, Endpoint, Exchange, Usage
from relay.native import NativeError, TokenCounter, counter_for

_PER_MILLION = 1_000_000.0
# Below this many bytes of text, counting on the loop costs well under a millisecond.
ON_LOOP_BYTES = 2048
log = logging.getLogger("relay")


def cost_usd(usage: Usage, pricing: Pricing) -> float:
    """Cost in USD: uncached prompt at ``input``, cache reads at ``cached`` and cache writes at
    ``cache_write`` (each defaults to ``input``), completion at ``output``."""
    cached_price = pricing.input if pricing.cached is None else pricing.cached
    write_price = pricing.input if pricing.cache_write is None else pricing.cache_write
    uncached = max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    return (
        uncached * pricing.input
        + usage.cached_tokens * cached_price
        + usage.cache_write_tokens * write_price
        + usage.completion_tokens * pricing.output
    ) / _PER_MILLION


def count_locally(ex: Exchange, encoding: str, completion: str) -> Usage:
    """Count prompt and completion tokens with the native tokenizer (any thread)."""
    counter = counter_for(encoding)
    return Usage(
        prompt_tokens=_count_prompt(ex, counter),
        completion_tokens=counter.count(completion) if completion else 0,
        counted_locally=True,
    )


def _count_prompt(ex: Exchange, counter: TokenCounter) -> int:
    if ex.endpoint is Endpoint.RESPONSES:
        chat = getattr(ex.translation, "chat", None)
        if chat is not None:  # translated: the chat request that was sent
            return _count_prompt(chat, counter)
        return counter.count(ex.body.decode("utf-8", "replace"))  # an upper bound
    if ex.endpoint is Endpoint.CHAT or ex.endpoint is Endpoint.MESSAGES:
        # An Anthropic body has a ``messages`` array of the same shape (role, string or text
        # parts): the chat count fits it.
        try:
            return counter.count_chat(ex.body)
        except NativeError:
            # Never price a prompt at 0: count the whole body as text (an upper bound).
            log.warning("request %s: prompt counted as raw text", ex.request_id)
            return counter.count(ex.body.decode("utf-8", "replace"))
    request = ex.request
    field = getattr(request, "input" if ex.endpoint is Endpoint.EMBEDDINGS else "prompt", None)
    return _count_field(field, counter.count)


def _count_field(field: Any, count: Callable[[str], int]) -> int:
    if isinstance(field, str):
        return count(field)
    if isinstance(field, list):
        if field and isinstance(field[0], int):
            return len(field)  # already token ids
        return sum(_count_field(item, count) for item in field)
    return 0


class Accountant:
    """Settles an exchange: the answering attempt's usage (counted locally if the provider
    reported none) and its cost. Runs before the last bytes so the cost can be sent."""

    async def settle(self, ex: Exchange) -> None:
        """Fill ``ex.usage`` and ``ex.cost_usd`` from the attempt that answered, if any."""
        attempt = ex.answered_by
        if attempt is None or ex.usage is not None:
            return
        usage = attempt.usage
        if usage is None and attempt.text is not None:
            usage = await self._count(ex, attempt)
        if usage is not None:
            ex.usage = usage
            ex.cost_usd = cost_usd(usage, attempt.deployment.pricing)

    @staticmethod
    async def _count(ex: Exchange, attempt: Attempt) -> Usage:
        assert attempt.text is not None
        completion = attempt.text() if ex.endpoint is not Endpoint.EMBEDDINGS else ""
        encoding = attempt.deployment.encoding
        if len(ex.body) + len(completion) <= ON_LOOP_BYTES:
            return count_locally(ex, encoding, completion)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, count_locally, ex, encoding, completion)
