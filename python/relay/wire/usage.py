"""Token usage as providers report it: the one value the wire formats and the exchange share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    """Token usage of one request. ``counted_locally`` when the provider reported none.

    ``prompt_tokens`` counts every prompt token once, cache reads (``cached_tokens``) and cache
    writes (``cache_write_tokens``, Anthropic's ``cache_creation_input_tokens``) included.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    counted_locally: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def counts(self) -> tuple[int, int, int, int]:
        """(prompt, completion, cached, cache_write): a stream step's ``usage``."""
        return (
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
        )
