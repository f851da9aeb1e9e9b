"""What a request asks for before the upstream call: its prompt's tokens (counted natively,
off the event loop past the usual size) plus the completion it may generate, and that at the
requested model's price."""

from __future__ import annotations

from relay.accounting.usage import count_locally, prompt_size
from relay.config.model import Config, Pricing
from relay.exchange import Endpoint, Exchange
from relay.limits.rule import Ask
from relay.native import (
    ON_LOOP_BYTES,
    NativeError,
    count_off_loop,
    counter_for,
    encoding_for_model,
)

_PER_MILLION = 1_000_000.0
NOTHING = Ask(0, 0.0)
_FREE = Pricing()
# Endpoints with a prompt to count (pass-through routes and stored-response look-ups have
# none the gateway reads; count_tokens generates nothing and costs nothing).
_COUNTED = frozenset(
    (
        Endpoint.CHAT,
        Endpoint.COMPLETIONS,
        Endpoint.EMBEDDINGS,
        Endpoint.MESSAGES,
        Endpoint.RESPONSES,
    )
)
_MAX_MODELS = 4096


class Asks:
    """Estimates :class:`~relay.limits.rule.Ask` for requests (one per worker)."""

    def __init__(self, config: Config) -> None:
        self.default_max_tokens = config.limits.default_max_tokens
        # name -> (encoding, pricing), made once: a request costs a dict look-up.
        self._models: dict[str, tuple[str, Pricing]] = {}
        for name, model in config.models.items():
            targets = model.targets
            upstream = (targets[0].model if targets else model.model) or name
            self._models[name] = (model.encoding or encoding_for_model(upstream), model.pricing)

    def _model(self, name: str) -> tuple[str, Pricing]:
        found = self._models.get(name)
        if found is None:  # a model sent on under its own name: no price of its own
            if len(self._models) >= _MAX_MODELS:
                return (encoding_for_model(name), _FREE)
            found = self._models[name] = (encoding_for_model(name), _FREE)
        return found

    async def of(self, ex: Exchange) -> Ask:
        """The prompt's tokens plus ``max_tokens`` (or ``limits.default_max_tokens``), and their
        price at the requested model's."""
        if ex.endpoint not in _COUNTED or ex.request is None:
            return NOTHING
        encoding, pricing = self._model(ex.model)
        size = prompt_size(ex)
        if ex.endpoint is Endpoint.CHAT and size <= ON_LOOP_BYTES:
            # The common case, without the accountant's Usage: the native count on the loop.
            try:
                prompt = counter_for(encoding).count_chat(ex.body)
            except NativeError:  # counted as text below, as the accountant does
                prompt = (await count_off_loop(size, count_locally, ex, encoding, "")).prompt_tokens
        else:
            prompt = (await count_off_loop(size, count_locally, ex, encoding, "")).prompt_tokens
        completion = 0 if ex.endpoint is Endpoint.EMBEDDINGS else self.completion_of(ex)
        spend = (prompt * pricing.input + completion * pricing.output) / _PER_MILLION
        return Ask(prompt + completion, spend)

    def completion_of(self, ex: Exchange) -> int:
        """The most tokens the request may generate: what it sets, else the default."""
        request = ex.request
        given = (
            getattr(request, "max_completion_tokens", None)
            or getattr(request, "max_tokens", None)
            or getattr(request, "max_output_tokens", None)
        )
        if isinstance(given, int) and not isinstance(given, bool) and given > 0:
            return given
        return self.default_max_tokens
