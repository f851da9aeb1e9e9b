"""What every provider adapter offers the gateway.

An adapter builds the upstream request and maps the upstream's answer, stream events, usage and
errors into the client's dialect; ``upstream/`` only moves bytes. When the client's dialect and
the provider speak the same wire format, bytes pass through untouched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar

from relay.config.model import ProviderConfig
from relay.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamProtocolError,
    UpstreamStatusError,
    without_account,
)
from relay.exchange import Attempt, Endpoint, Exchange
from relay.stage import Outbound, StreamMapper, UpstreamResponse


class ProviderBase(ABC):
    """The shared implementation of the :class:`~relay.stage.Provider` contract. Adapters hold
    configuration only (no per-request state, no connection), so one instance serves every
    request of a worker; per-request state lives on the :class:`~relay.exchange.Attempt`.
    The attempt loop sends what :meth:`prepare` builds."""

    kind: ClassVar[str] = ""
    # The wire format the provider speaks ("openai", later "anthropic", "bedrock").
    wire: ClassVar[str] = "openai"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(Endpoint)
    # Serves OpenAI's Responses API itself (/v1/responses is passed through); otherwise a
    # Responses request is translated to this provider's chat API.
    native_responses: bool = False

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    def check(self, ex: Exchange) -> None:
        """Refuse, before any network call, a request this provider cannot serve."""
        if ex.endpoint not in self.endpoints:
            raise InvalidRequest(
                f"provider '{self.name}' (kind {self.kind}) does not serve /v1{ex.endpoint.value}"
            )

    def passthrough(self, ex: Exchange, attempt: Attempt) -> tuple[str, dict[str, str]] | None:
        """For a pass-through route (files, images, audio, ...): the API root the route under
        ``/v1`` is appended to, and the headers that authenticate the gateway (or the caller,
        with ``forward_client_auth``). None: this provider takes no other routes."""
        return None

    @abstractmethod
    async def prepare(self, ex: Exchange, attempt: Attempt) -> Outbound | UpstreamResponse:
        """The request to send for ``attempt`` (the loop sends it), or an answer made in
        process."""

    @abstractmethod
    def map_json(self, ex: Exchange, attempt: Attempt, body: bytes) -> bytes:
        """The client's body from a successful JSON answer; fill ``attempt.usage`` and
        ``attempt.text``. Raise :class:`~relay.errors.UpstreamProtocolError` on a bad body."""

    @abstractmethod
    def stream_mapper(self, ex: Exchange, attempt: Attempt) -> StreamMapper:
        """A fresh mapper for one streamed answer."""

    @abstractmethod
    def stream_error(self, raw: bytes) -> GatewayError:
        """The error a provider reported in the middle of a stream (raw JSON of it)."""

    def secrets(self) -> tuple[str, ...]:
        """Configured credentials, scrubbed from any provider text a client or log may see."""
        return (self.config.api_key,) if self.config.api_key else ()

    def gateway_fault(self, attempt: Attempt, status: int) -> GatewayError | None:
        """The answers that are the operator's problem, whatever the wire format: a redirect
        (a wrong ``base_url``) and the gateway's own credentials refused. None otherwise."""
        if 300 <= status < 400:
            return UpstreamProtocolError(
                f"provider '{self.name}' answered with a redirect ({status}); check its base_url"
            )
        if status in (401, 403) and not attempt.caller_credential:
            return self.credentials_refused(str(status))
        return None

    # The settings that hold this provider's credentials, named when they are refused.
    credential_settings: ClassVar[tuple[str, ...]] = ("api_key",)

    def credentials_refused(self, detail: str) -> GatewayError:
        """The gateway's own credentials were refused (``detail``: the status, the provider's
        error name): a 502 that names the settings to check, never the client's fault."""
        settings = [f"providers.{self.name}.{key}" for key in self.credential_settings]
        named = (
            settings[0] if len(settings) == 1 else ", ".join(settings[:-1]) + " and " + settings[-1]
        )
        return UpstreamStatusError(
            502,
            f"provider '{self.name}' refused the gateway's credentials ({detail}); check {named}",
            error_type="upstream_error",
            code="upstream_auth_failed",
        )

    @abstractmethod
    def error_from(
        self, attempt: Attempt, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        """Map a non-2xx answer to the error the client sees."""

    def answer_error(
        self, attempt: Attempt, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        """:meth:`error_from`, as the client may see it: with the gateway's own key, the
        provider account ids its message names (OpenAI's ``org-``/``proj_`` ids) are scrubbed;
        with the caller's own key (``forward_client_auth``) the account is the caller's."""
        err = self.error_from(attempt, status, body, headers)
        return err if attempt.caller_credential else without_account(err)

    def stream_error_for(self, attempt: Attempt) -> Callable[[bytes], GatewayError]:
        """:meth:`stream_error` for ``attempt``'s stream, scrubbed as :meth:`answer_error`."""
        if attempt.caller_credential:
            return self.stream_error
        stream_error = self.stream_error
        return lambda raw: without_account(stream_error(raw))
