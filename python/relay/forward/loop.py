"""The attempt loop: every call to a provider is an :class:`Attempt`, made in the order of
routing's policy. Before the commit point (the whole JSON body, or a stream's first content) a
failure may move on to the next attempt; the policy (``AttemptPolicy``, routing's
``RoutingPolicy`` in the gateway) decides which, if any: retries, failover across targets,
fallback chains, circuit breakers. After it, the answer belongs to the client: the attempt is
marked as the exchange's ``answer`` and settled (usage and cost), here and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.config.model import Timeouts
from relay.errors import GatewayError, InvalidRequest
from relay.exchange import Attempt, Deployment, Exchange
from relay.stage import (
    AnswerHook,
    Outbound,
    Provider,
    Relay,
    StreamHook,
    Transport,
    UpstreamResponse,
    timeouts_of,
)
from relay.upstream import UpstreamPool

log = logging.getLogger("relay")


@dataclass(slots=True)
class JsonAnswer:
    """A provider's successful JSON answer, mapped to the client's dialect (not frozen: a
    frozen dataclass sets each field through ``object.__setattr__``, four calls a request)."""

    status: int
    body: bytes
    upstream_headers: Mapping[str, str]
    caller_credential: bool


class AttemptPolicy(Protocol):
    """Chooses the deployment of each attempt (retries, fallback, breakers plug in here) and
    hears how each attempt ended. Every deployment :meth:`next` returns is reported once, to
    :meth:`finished` or :meth:`abandoned`."""

    async def next(
        self, ex: Exchange, failed: Attempt | None, err: GatewayError | None
    ) -> Deployment:
        """The next deployment to try (``failed`` is None for the first); raise ``err``, or
        an error of its own, when there is none. May wait (backoff) before returning."""
        ...

    def timeouts(self, ex: Exchange, deployment: Deployment) -> Timeouts | None:
        """The timeouts of an attempt on ``deployment`` (None: the provider's own)."""
        ...

    def finished(
        self,
        ex: Exchange,
        attempt: Attempt,
        err: GatewayError | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``attempt`` ended: a success when ``err`` is None; ``headers`` of an error answer."""
        ...

    def abandoned(self, ex: Exchange, attempt: Attempt) -> None:
        """``attempt`` ended without an outcome (the client left, the gateway stopped)."""
        ...


class FirstAnswer:
    """Without routing's policy: the plan's first deployment, and its outcome is final."""

    async def next(
        self, ex: Exchange, failed: Attempt | None, err: GatewayError | None
    ) -> Deployment:
        if err is not None:
            raise err
        if not ex.plan:
            raise InvalidRequest("no deployment left to try")  # routing planned none
        return ex.plan[0]

    def timeouts(self, ex: Exchange, deployment: Deployment) -> Timeouts | None:
        return deployment.timeouts

    def finished(
        self,
        ex: Exchange,
        attempt: Attempt,
        err: GatewayError | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        return None

    def abandoned(self, ex: Exchange, attempt: Attempt) -> None:
        return None


OpenClient = Callable[[Attempt, Mapping[str, str]], Awaitable[Transport]]
RelayFactory = Callable[..., Relay]
# Adds headers to an attempt's request just before it is sent (trace context: ``traceparent``).
Propagate = Callable[[Exchange, Attempt, dict[str, str]], None]


class AttemptLoop:
    """Runs the attempts of one exchange; the composition root supplies the collaborators."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        pool: UpstreamPool,
        relay: RelayFactory,
        settle: Callable[[Exchange], Awaitable[None]],
        hooks: Sequence[StreamHook] = (),
        policy: AttemptPolicy | None = None,
        answer_hooks: Sequence[AnswerHook] = (),
        propagate: Propagate | None = None,
    ) -> None:
        self.providers = providers
        self.pool = pool
        self.relay = relay
        self.settle = settle
        self.hooks = tuple(hooks)
        self.answer_hooks = tuple(answer_hooks)
        self.policy = policy or FirstAnswer()
        # None unless tracing is on: then one attribute test per attempt is all it costs.
        self.propagate = propagate

    async def json(self, ex: Exchange) -> JsonAnswer:
        """Until an attempt answers: the provider's body mapped for the client, settled, and
        passed through the answer hooks (kept as ``ex.answer_body``)."""
        failed: Attempt | None = None
        err: GatewayError | None = None
        while True:
            attempt, provider, upstream = await self._open(ex, failed, err)
            # Only the next failure matters now; an old error's traceback holds this frame,
            # which will hold the stream's transport (a cycle would keep the response open).
            failed = err = None
            try:
                body = await upstream.read()
                attempt.ended = attempt.ready_at = time.perf_counter()
                mapped = provider.map_json(ex, attempt, body)
            except GatewayError as exc:
                self._failed(ex, attempt, exc)
                failed, err = attempt, exc
                continue
            except BaseException:
                self.policy.abandoned(ex, attempt)
                raise
            finally:
                upstream.close()
            self.policy.finished(ex, attempt, None)
            ex.answer = attempt
            await self.settle(ex)
            for hook in self.answer_hooks:
                mapped = hook.on_answer(ex, mapped)
            ex.answer_body = mapped
            return JsonAnswer(upstream.status, mapped, upstream.headers, attempt.caller_credential)

    async def stream(self, ex: Exchange, open_client: OpenClient) -> None:
        """Until an attempt commits: relay its stream to the client. Before the commit point a
        failure moves on to the next attempt, invisibly; after it the relay ends the stream
        with the dialect's error event. A stream that did not complete (cut, abandoned by its
        client, ended by a shutdown) is settled with what it relayed."""
        try:
            await self._stream(ex, open_client)
        finally:
            if ex.answer is not None and ex.usage is None:
                try:
                    await self.settle(ex)
                except Exception:
                    log.exception("accounting failed for request %s", ex.request_id)

    async def _stream(self, ex: Exchange, open_client: OpenClient) -> None:
        failed: Attempt | None = None
        err: GatewayError | None = None
        while True:
            attempt, provider, upstream = await self._open(ex, failed, err)
            # Only the next failure matters now; an old error's traceback holds this frame,
            # which will hold the stream's transport (a cycle would keep the response open).
            failed = err = None

            async def opener(
                attempt: Attempt = attempt, headers: Mapping[str, str] = upstream.headers
            ) -> Transport:
                return await open_client(attempt, headers)

            relay = self.relay(
                ex,
                attempt,
                upstream,
                provider.stream_mapper(ex, attempt),
                provider.stream_error_for(attempt),
                opener,
                self.settle,
                self.hooks,
            )
            ex.abort_stream = relay.abort
            try:
                await relay.run()
            except GatewayError as exc:
                if relay.committed:  # the relay raises only before the commit point
                    self.policy.abandoned(ex, attempt)
                    raise
                self._failed(ex, attempt, exc)
                failed, err = attempt, exc
                continue
            except BaseException:
                self.policy.abandoned(ex, attempt)
                raise
            finally:
                upstream.close()
            if relay.failure is not None:  # ended after the commit point with an error event
                self._failed(ex, attempt, relay.failure)
            else:
                self.policy.finished(ex, attempt, None)
            return

    async def _open(
        self, ex: Exchange, failed: Attempt | None, err: GatewayError | None
    ) -> tuple[Attempt, Provider, UpstreamResponse]:
        """The next attempt whose provider answers with a success status."""
        policy = self.policy
        while True:
            deployment = await policy.next(ex, failed, err)
            provider = self.providers[deployment.provider]
            attempt = Attempt(
                deployment,
                len(ex.attempts),
                started=time.perf_counter(),
                timeouts=policy.timeouts(ex, deployment),
            )
            ex.attempts.append(attempt)
            ex.deployment = deployment
            headers: dict[str, str] | None = None
            try:
                provider.check(ex)
                upstream = await self._send(ex, provider, attempt)
                attempt.headers_at = time.perf_counter()
                attempt.status = upstream.status
                if upstream.status < 300:
                    return attempt, provider, upstream
                try:
                    body = await upstream.read()
                finally:
                    upstream.close()
                headers = _lower(upstream.headers)
                raise provider.answer_error(attempt, upstream.status, body, headers)
            except GatewayError as exc:
                self._failed(ex, attempt, exc, headers)
                failed, err = attempt, exc
            except BaseException:
                policy.abandoned(ex, attempt)
                raise

    async def _send(self, ex: Exchange, provider: Provider, attempt: Attempt) -> UpstreamResponse:
        """Send what the provider built, under the timeouts the policy chose for the attempt
        (an adapter never picks its own: model timeouts and ``x-relay-timeout`` hold for all)."""
        request = await provider.prepare(ex, attempt)
        if not isinstance(request, Outbound):
            return request  # answered in process
        headers = request.headers
        if self.propagate is not None:
            headers = dict(headers)  # an adapter may hand out a shared mapping
            self.propagate(ex, attempt, headers)
        return await self.pool.send(
            provider.name,
            request.url,
            headers,
            request.body,
            timeouts_of(provider, attempt),
            stream=ex.stream,
            url_encoded=request.url_encoded,
        )

    def _failed(
        self,
        ex: Exchange,
        attempt: Attempt,
        err: GatewayError,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Record a failed attempt and tell the policy."""
        attempt.error = attempt.error or err.code or err.type
        attempt.ended = attempt.ended or time.perf_counter()
        self.policy.finished(ex, attempt, err, headers)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
