"""Usage from the provider's report, or counted locally when it reported none; cost from prices.

Local counting runs the native tokenizer: a large prompt or completion is counted on a worker
thread (``native.count_off_loop``, sized by the text counted), so the event loop never stalls. A
stream's text is counted as it arrives (``stream/tally.py``): what is left to count at the end is
its last, uncounted part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from relay.config.model import Pricing
from relay.exchange import Attempt, Endpoint, Exchange, Usage
from relay.native import NativeError, TokenCounter, count_off_loop, counter_for

_PER_MILLION = 1_000_000.0
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


def count_locally(
    ex: Exchange, encoding: str, completion: str, prompt_tokens: int | None = None
) -> Usage:
    """Count prompt (unless already counted) and completion tokens with the native tokenizer
    (any thread)."""
    counter = counter_for(encoding)
    return Usage(
        prompt_tokens=_count_prompt(ex, counter) if prompt_tokens is None else prompt_tokens,
        completion_tokens=counter.count(completion) if completion else 0,
        counted_locally=True,
    )


def prompt_size(ex: Exchange) -> int:
    """Bytes of the request whose prompt :func:`count_locally` counts (for a translated
    Responses request, the chat request sent, stored history included)."""
    chat = getattr(ex.translation, "chat", None) if ex.endpoint is Endpoint.RESPONSES else None
    return len(chat.body) if isinstance(chat, Exchange) else len(ex.body)


def _count_prompt(ex: Exchange, counter: TokenCounter) -> int:
    if ex.endpoint is Endpoint.RESPONSES:
        chat = getattr(ex.translation, "chat", None)
        if chat is not None:  # translated: the chat request that was sent
            return _count_prompt(chat, counter)
        return counter.count(ex.body.decode("utf-8", "replace"))  # an upper bound
    if ex.endpoint is Endpoint.CHAT or ex.endpoint is Endpoint.MESSAGES:
        try:
            if ex.endpoint is Endpoint.MESSAGES:  # system, blocks, tool use and results, tools
                return counter.count_messages(ex.body)
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
        # Read together: a stream's tally moves text into text_tokens only between awaits.
        counted = attempt.text_tokens  # counted as the stream arrived
        completion = attempt.text() if ex.endpoint is not Endpoint.EMBEDDINGS else ""
        prompt = attempt.prompt_tokens
        size = len(completion) + (prompt_size(ex) if prompt is None else 0)
        usage = await count_off_loop(
            size, count_locally, ex, attempt.deployment.encoding, completion, prompt
        )
        usage.completion_tokens += counted
        return usage
