"""``/v1/responses`` on every provider: passed through to a provider that has OpenAI's Responses
API (``native_responses``), translated to the chat API of any other.

:class:`ResponsesBridge` wraps each configured adapter. Requests of other APIs go straight to
the adapter. A Responses request on a translating provider is turned into a chat completions
request (:mod:`relay.providers.translate.responses_request`), sent through the adapter's own
chat path as if an OpenAI chat client had sent it (an *exchange view*: a second
:class:`~relay.exchange.Exchange` sharing the caller, the headers and the route), and its
answer or stream is turned back into a Response or Responses events. ``previous_response_id``
names a response the gateway stored (``relay.ledger.responses``), in the caller's tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from relay.dialects.openai import OPENAI_DIALECTS
from relay.errors import GatewayError, InvalidRequest
from relay.exchange import Attempt, Endpoint, Exchange
from relay.ledger.responses import ResponseStore, scope
from relay.providers.base import ProviderBase
from relay.providers.translate import responses_answer, responses_request, responses_stream
from relay.providers.translate.common import encode
from relay.providers.translate.responses_answer import Draft
from relay.stage import Outbound, StreamMapper, UpstreamResponse
from relay.wire.responses import ResponsesRequest

_CHAT = OPENAI_DIALECTS[0]
_ITEMS = msgspec.json.Decoder(list[dict[str, Any]])


def draft_of(ex: Exchange, store: ResponseStore | None) -> Draft:
    """The exchange's Response draft, made on its first attempt."""
    draft: Draft | None = ex.translation
    if draft is None:
        req: ResponsesRequest = ex.request
        draft = ex.translation = Draft(req, store is not None and req.store is not False)
    return draft


class ResponsesBridge(ProviderBase):
    """An adapter plus the Responses API (see the module docstring)."""

    def __init__(self, inner: ProviderBase, store: ResponseStore | None) -> None:
        # No super().__init__: the wrapped adapter holds the configuration.
        self.inner = inner
        self.name = inner.name
        self.config = inner.config
        self.kind = inner.kind  # type: ignore[misc]
        self.native_responses = inner.native_responses
        self.store = store

    def check(self, ex: Exchange) -> None:
        if ex.endpoint is not Endpoint.RESPONSES or self.native_responses:
            self.inner.check(ex)
        # A translated request is checked as the chat request it becomes, in send().

    async def prepare(self, ex: Exchange, attempt: Attempt) -> Outbound | UpstreamResponse:
        if ex.endpoint is not Endpoint.RESPONSES:
            return await self.inner.prepare(ex, attempt)
        draft = draft_of(ex, self.store)
        draft.translated = not self.native_responses
        if not draft.translated:
            return await self.inner.prepare(ex, attempt)
        view = await self._view(ex, attempt, draft)
        self.inner.check(view)
        try:
            return await self.inner.prepare(view, attempt)
        except InvalidRequest as err:  # the provider's path refused a chat parameter
            raise responses_request.name_as_sent(err) from None

    async def _view(self, ex: Exchange, attempt: Attempt, draft: Draft) -> Exchange:
        """The chat request this attempt sends, as an exchange of the chat dialect."""
        req: ResponsesRequest = ex.request
        if draft.chat is None:  # the first translated attempt: load the earlier turns
            draft.history = await self._earlier(ex, req) + responses_request.input_items(req)
        chat = responses_request.chat_request(
            req,
            draft.history,
            ex.model,
            attempt.deployment,
            self.name,
            self.kind,
            body=ex.body,
        )
        view = Exchange(
            ex.request_id,
            Endpoint.CHAT,
            encode(chat),
            ex.headers,
            dialect=_CHAT,
            model=ex.model,
            stream=ex.stream,
            client_wants_usage=True,
            principal=ex.principal,
            deployment=ex.deployment,
            model_defaulted=ex.model_defaulted,
        )
        draft.chat = view
        return view

    async def _earlier(self, ex: Exchange, req: ResponsesRequest) -> list[dict[str, Any]]:
        """The conversation up to ``previous_response_id`` (none without one)."""
        if req.store and self.store is None:
            raise InvalidRequest(
                "store: this gateway does not store responses for this model's provider "
                "(database.responses.enabled is false, or database.url is none)",
                param="store",
            )
        previous = req.previous_response_id
        if previous is None:
            return []
        if self.store is None:
            raise InvalidRequest(
                "previous_response_id: this gateway does not store responses for this model's "
                "provider (database.responses.enabled is false, or database.url is none); send "
                "the whole conversation in input",
                param="previous_response_id",
            )
        stored = await self.store.get(previous, *scope(ex.principal))
        if stored is None:
            raise InvalidRequest(
                f"previous_response_id: no stored response '{previous}'",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        items: list[dict[str, Any]] = _ITEMS.decode(stored.conversation)
        return items

    def map_json(self, ex: Exchange, attempt: Attempt, body: bytes) -> bytes:
        draft = ex.translation
        if ex.endpoint is not Endpoint.RESPONSES or not draft.translated:
            return self.inner.map_json(ex, attempt, body)
        completion = self.inner.map_json(draft.chat, attempt, body)
        return responses_answer.from_completion(ex, draft, self.name, attempt, completion)

    def stream_mapper(self, ex: Exchange, attempt: Attempt) -> StreamMapper:
        draft = ex.translation
        if ex.endpoint is not Endpoint.RESPONSES or not draft.translated:
            return self.inner.stream_mapper(ex, attempt)
        inner = self.inner.stream_mapper(draft.chat, attempt)
        return responses_stream.EventStream(ex, draft, inner, self.name)

    def passthrough(self, ex: Exchange, attempt: Attempt) -> tuple[str, dict[str, str]] | None:
        return self.inner.passthrough(ex, attempt)

    def stream_error(self, raw: bytes) -> GatewayError:
        return self.inner.stream_error(raw)

    def error_from(
        self, attempt: Attempt, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        return self.inner.error_from(attempt, status, body, headers)


def bridge(
    providers: Mapping[str, ProviderBase], store: ResponseStore | None
) -> dict[str, ProviderBase]:
    """Every adapter wrapped for the Responses API."""
    return {name: ResponsesBridge(provider, store) for name, provider in providers.items()}
