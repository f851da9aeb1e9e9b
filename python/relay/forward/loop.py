"""The attempt loop: every call to a provider is an :class:`Attempt`, made in the order of
routing's plan. Before the commit point (the whole JSON body, or a stream's first content) a
failure may move on to the next attempt; this is where retries, fallback and circuit breakers
plug in (``AttemptPolicy``). After it, the answer belongs to the client.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from relay.errors import GatewayError, InvalidRequest
from relay.exchange import Attempt, Exchange
from relay.stage import Relay, StreamHook, Transport, UpstreamResponse

if TYPE_CHECKING:  # types only: the composition root wires the real objects
    from relay.providers.base import Provider


@dataclass(slots=True, frozen=True)
class JsonAnswer:
    """A provider's successful JSON answer, mapped to the client's dialect."""

    status: int
    body: bytes
    upstream_headers: Mapping[str, str]
    caller_credential: bool


class AttemptPolicy(Protocol):
    """Decides whether a failed attempt is followed by the next one in the plan."""

    def try_next(self, ex: Exchange, attempt: Attempt, err: GatewayError) -> bool:
        """True to go on with the next deployment of the plan."""
        ...


class FirstAnswer:
    """The policy until retries and fallback exist: the first attempt's outcome is final."""

    def try_next(self, ex: Exchange, attempt: Attempt, err: GatewayError) -> bool:
        return False


OpenClient = Callable[[Attempt, Mapping[str, str]], Awaitable[Transport]]
RelayFactory = Callable[..., Relay]


class AttemptLoop:
    """Runs the attempts of one exchange; the composition root supplies the collaborators."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        relay: RelayFactory,
        settle: Callable[[Exchange], Awaitable[None]],
        hooks: Sequence[StreamHook] = (),
        policy: AttemptPolicy | None = None,
    ) -> None:
        self.providers = providers
        self.relay = relay
        self.settle = settle
        self.hooks = tuple(hooks)
        self.policy = policy or FirstAnswer()

    async def json(self, ex: Exchange) -> JsonAnswer:
        """Until an attempt answers: the provider's body mapped for the client."""
        while True:
            attempt, provider, upstream = await self._open(ex)
            try:
                body = await upstream.read()
                attempt.ended = attempt.ready_at = time.perf_counter()
                mapped = provider.map_json(ex, attempt, body)
            except GatewayError as err:
                if self._next(ex, attempt, err):
                    continue
                raise
            finally:
                upstream.close()
            return JsonAnswer(upstream.status, mapped, upstream.headers, attempt.caller_credential)

    async def stream(self, ex: Exchange, open_client: OpenClient) -> None:
        """Until an attempt commits: relay its stream to the client."""
        while True:
            attempt, provider, upstream = await self._open(ex)

            async def opener(
                attempt: Attempt = attempt, headers: Mapping[str, str] = upstream.headers
            ) -> Transport:
                return await open_client(attempt, headers)

            relay = self.relay(
                ex,
                attempt,
                upstream,
                provider.stream_mapper(ex, attempt),
                provider.stream_error,
                opener,
                self.settle,
                self.hooks,
            )
            ex.abort_stream = relay.abort
            try:
                await relay.run()
                return
            except GatewayError as err:
                if relay.committed or not self._next(ex, attempt, err):
                    raise
            finally:
                upstream.close()

    async def _open(self, ex: Exchange) -> tuple[Attempt, Provider, UpstreamResponse]:
        """The next attempt of the plan whose provider answers with a success status."""
        plan = ex.plan
        while True:
            number = len(ex.attempts)
            if number >= len(plan):
                raise InvalidRequest("no deployment left to try")  # routing planned none
            deployment = plan[number]
            provider = self.providers[deployment.provider]
            attempt = Attempt(deployment, number, started=time.perf_counter())
            ex.attempts.append(attempt)
            ex.deployment = deployment
            try:
                provider.check(ex)
                upstream = await provider.send(ex, attempt)
                attempt.headers_at = time.perf_counter()
                attempt.status = upstream.status
                if upstream.status < 300:
                    return attempt, provider, upstream
                try:
                    body = await upstream.read()
                finally:
                    upstream.close()
                raise provider.error_from(attempt, upstream.status, body, _lower(upstream.headers))
            except GatewayError as err:
                if not self._next(ex, attempt, err):
                    raise

    def _next(self, ex: Exchange, attempt: Attempt, err: GatewayError) -> bool:
        """Record a failed attempt; True when the plan goes on."""
        attempt.error = attempt.error or err.code or err.type
        attempt.ended = attempt.ended or time.perf_counter()
        return len(ex.attempts) < len(ex.plan) and self.policy.try_next(ex, attempt, err)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
