"""The composition root with a stage that answers itself (as a cache hit will), JSON or stream,
driven through the RSGI interface with a stand-in for granian's protocol object."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from relay.app import Extensions, RelayApp
from relay.config import parse_config
from relay.exchange import Exchange
from relay.stage import Reply
from tests.rsgi import Proto, Scope

CONFIG = parse_config("providers: {echo: {kind: echo}}\nmodels: {echo: {provider: echo}}\n", "t")
BODY = b'{"model":"echo","messages":[{"role":"user","content":"hi"}]}'


class Answering:
    """A stage that answers every request itself."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.seen: list[Exchange] = []

    async def __call__(self, ex: Exchange) -> Reply | None:
        self.seen.append(ex)
        if not self.stream:
            return Reply(200, (("x-relay-cache", "hit"),), b'{"cached":true}')

        async def frames() -> AsyncIterator[bytes]:
            yield b"data: {}\n\n"
            yield b"data: [DONE]\n\n"

        return Reply(200, (("x-relay-cache", "hit"),), stream=frames())


class Recorder:
    def __init__(self) -> None:
        self.finished: list[Exchange] = []

    def on_finish(self, ex: Exchange) -> None:
        self.finished.append(ex)


def serve(stream: bool) -> tuple[Proto, Answering, Recorder]:
    stage, tap = Answering(stream), Recorder()
    app = RelayApp(CONFIG, Extensions(stages=(stage,), taps=(tap,)))
    proto = Proto(BODY)
    scope = Scope("/v1/chat/completions", headers={"content-length": str(len(BODY))})
    asyncio.run(app.__rsgi__(scope, proto))
    return proto, stage, tap


def test_a_stage_answers_json_with_the_gateways_headers() -> None:
    proto, stage, tap = serve(stream=False)
    headers = dict(proto.headers)
    assert proto.status == 200 and proto.sent == [b'{"cached":true}']
    assert headers["x-relay-cache"] == "hit" and headers["x-request-id"].startswith("req_")
    # the stage saw the decoded request, and the tap ran once, after the answer
    assert stage.seen[0].request.messages[0].content == "hi"
    assert tap.finished == stage.seen and tap.finished[0].status == 200


def test_a_stage_answers_with_a_stream() -> None:
    proto, _, tap = serve(stream=True)
    assert dict(proto.headers)["content-type"].startswith("text/event-stream")
    assert b"".join(proto.sent) == b"data: {}\n\ndata: [DONE]\n\n"
    assert len(tap.finished) == 1


def test_a_failing_tap_does_not_fail_the_request() -> None:
    class Broken:
        def on_finish(self, ex: Exchange) -> None:
            raise RuntimeError("tap bug")

    app = RelayApp(CONFIG, Extensions(taps=(Broken(),)))
    proto = Proto(BODY)
    scope = Scope("/v1/chat/completions", headers={"content-length": str(len(BODY))})
    asyncio.run(app.__rsgi__(scope, proto))
    assert proto.status == 200
    assert msgspec.json.decode(proto.sent[0])["choices"][0]["message"]["content"] == "You said: hi"


def test_request_ids_are_unique_across_forked_workers() -> None:
    import os

    from relay.ids import new_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker forked from a process that already made ids
        os.write(write, new_id("req_").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    mine, again = new_id("req_"), new_id("req_")
    assert child.startswith("req_") and child[:20] != mine[:20]
    assert mine != again and mine[:20] == again[:20]


def test_wrong_method_on_an_api_route_uses_its_envelope_and_is_recorded() -> None:
    tap = Recorder()
    app = RelayApp(CONFIG, Extensions(taps=(tap,)))
    for path, shape in (("/v1/messages", {"type", "error"}), ("/v1/chat/completions", {"error"})):
        proto = Proto(b"")
        asyncio.run(app.__rsgi__(Scope(path, method="GET"), proto))
        body = msgspec.json.decode(proto.sent[0])
        assert proto.status == 405 and set(body) == shape
        assert "GET is not allowed on " + path in proto.sent[0].decode()
    # one ledger row (a tap run) per request, 405s included
    assert [ex.status for ex in tap.finished] == [405, 405]
    assert msgspec.json.decode(proto.sent[0])["error"]["code"] == "method_not_allowed"


def test_tune_gc_freezes_the_start_up_heap_and_spaces_young_passes() -> None:
    import gc

    from relay.app import GC_YOUNG_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
