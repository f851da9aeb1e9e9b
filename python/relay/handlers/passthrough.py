"""Every other ``/v1`` route: the same gates and stages (a stored response is answered by one),
then forwarded to a configured provider, bodies streamed both ways."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from relay.errors import GatewayError, ShuttingDown
from relay.exchange import Endpoint, Exchange
from relay.handlers.common import INTERNAL, Inflight, Pipeline, request_id
from relay.ingress.watch import RequestWatch
from relay.passthrough.forward import Passthrough

log = logging.getLogger("relay")


class PassthroughRoute:
    """Any method on a route under ``/v1`` that no dialect and no local route claims."""

    def __init__(self, pipeline: Pipeline, passthrough: Passthrough, inflight: Inflight) -> None:
        self.pipeline = pipeline
        self.passthrough = passthrough
        self.inflight = inflight

    async def __call__(self, scope: Any, proto: Any) -> None:
        pipeline, inflight = self.pipeline, self.inflight
        ex = Exchange(
            request_id(scope), Endpoint.PASSTHROUGH, b"", scope.headers, client=scope.client
        )
        task = asyncio.current_task()
        assert task is not None
        inflight.tasks.add(task)
        # Uploads bound their own reads (a pause between two reads); this watches the client.
        watch = RequestWatch(proto, ex, task, pipeline.body_timeout_s)
        try:
            if inflight.draining:
                raise ShuttingDown("the gateway is shutting down; retry on another instance")
            await pipeline.admit(ex, proto)  # a gateway key, before any upload is read
            body = await self.passthrough.open(ex, scope, proto)
            if not await pipeline.answered_by_stage(ex, proto):
                await self.passthrough.forward(ex, scope, proto, body)
        except GatewayError as err:
            if ex.status:  # the answer had started: it ends here, cut
                ex.truncated = True
                ex.error_type = err.code or err.type
            else:
                pipeline.fail(ex, proto, err)
        except asyncio.CancelledError:
            if not ex.client_gone and not inflight.draining:
                raise
            ex.status = 499 if ex.client_gone else ex.status or 503
        except OSError:  # the client went away while the answer was relayed
            ex.client_gone = True
            ex.status = 499
        except Exception:
            log.exception("unhandled error in request %s", ex.request_id)
            if not ex.status:
                pipeline.fail(ex, proto, INTERNAL)
        finally:
            watch.cancel()
            inflight.tasks.discard(task)
            await pipeline.finish(ex)
