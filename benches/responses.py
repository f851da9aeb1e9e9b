"""What serving /v1/responses by translation to chat costs, against the chat pass-through, in one
run (target: at most 1.3x).

1. In process (always): the provider-side Python work of one request, ``time.process_time`` in
   alternating turns:
   * JSON: chat pass-through = ``upstream_body`` + ``map_json`` of a chat completion;
     Responses translated = the Responses -> chat request, the chat view's ``upstream_body``,
     the vendor's ``map_json`` and the chat completion -> Response (``ResponsesBridge``);
     Responses native = ``upstream_body`` + the Response probe.
   * a 20-chunk stream, one event per network read: chat pass-through = the native scanner;
     Responses translated = the scanner, then chat chunks -> Responses events;
     Responses native = the Responses event relay on the same text's events.
2. Through the real server (``--server``): ``relay serve`` in front of the fake OpenAI server,
   N sequential requests per path in turns; the gateway's CPU (all processes) per request and
   per 20-chunk stream. ``vendor`` is the fake with ``native_responses: false`` (its chat API);
   Responses requests send ``store: false`` (storing is a background write, measured apart
   with ``--store``).

Run from the repository root with the extension in place:
    PYTHONPATH=python python3 benches/responses.py [--server] [--requests 300] [--store]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

from translation import per_call_us, report, server_cpu_us  # noqa: E402

from relay.config.model import ProviderConfig  # noqa: E402
from relay.dialects import OPENAI_DIALECTS, RESPONSES_DIALECTS  # noqa: E402
from relay.exchange import Attempt, Deployment, Exchange  # noqa: E402
from relay.providers import openai_responses  # noqa: E402
from relay.providers.openai_compat import OpenAICompatible  # noqa: E402
from relay.providers.openai_wire import OpenAIStreamMapper, upstream_body  # noqa: E402
from relay.providers.responses import ResponsesBridge  # noqa: E402
from tests.fakes.openai_responses import answer, events  # noqa: E402

SYSTEM = "You are a helpful assistant. Answer briefly."
TURNS = [
    ("user", "What is the weather like in Paris today, and tomorrow?"),
    ("assistant", "Let me think about that for a moment."),
    ("user", "Please answer in twenty words or so, no more."),
]
CHAT_BODY = msgspec.json.encode(
    {
        "model": "m",
        "messages": [{"role": "system", "content": SYSTEM}]
        + [{"role": r, "content": c} for r, c in TURNS],
        "temperature": 0.2,
        "max_tokens": 200,
    }
)
RESPONSES_BODY = msgspec.json.encode(
    {
        "model": "m",
        "instructions": SYSTEM,
        "input": [{"role": r, "content": c} for r, c in TURNS],
        "temperature": 0.2,
        "max_output_tokens": 200,
        "store": False,
    }
)
WORDS = [f"w{i}" for i in range(18)]  # "Echo:" + 18 words + finish = 20 content chunks
TEXT = "Echo: " + " ".join(WORDS)
PROVIDER = ProviderConfig(kind="vllm", base_url="http://h/v1", api_key="k")
VENDOR = OpenAICompatible("vendor", PROVIDER)
BRIDGE = ResponsesBridge(VENDOR, None)


def chat_completion() -> bytes:
    message = {"role": "assistant", "content": TEXT, "refusal": None}
    return msgspec.json.encode(
        {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
        }
    )  # fmt: skip


def chat_stream() -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": choices, "usage": usage}  # fmt: skip
        return b"data: " + msgspec.json.encode(body) + b"\n\n"

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(TEXT.split())]
    frames.append(chunk({}, "stop"))
    frames.append(
        chunk({}, usage={"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60})
    )
    return [*frames, b"data: [DONE]\n\n"]


def responses_stream() -> tuple[bytes, list[bytes]]:
    body = {"model": "m", "input": "x", "instructions": SYSTEM}
    response, _ = answer({**body, "input": [{"role": "user", "content": " ".join(WORDS)}]}, {}, 1)
    return msgspec.json.encode(response), events(response)


def exchange(body: bytes, dialect: Any, stream: bool = False) -> tuple[Exchange, Attempt]:
    ex = Exchange("req_bench", dialect.endpoint, body, {}, dialect=dialect)
    dialect.parse(ex)
    ex.stream = stream
    ex.model = "m"
    deployment = Deployment("vendor", "upstream-model", "m")
    ex.deployment = deployment
    return ex, Attempt(deployment)


def in_process(turns: int, seconds: float) -> dict[str, float]:
    chat, responses = OPENAI_DIALECTS[0], RESPONSES_DIALECTS[0]
    completion, chunks = chat_completion(), chat_stream()
    native_json, native_events = responses_stream()
    stream_body = msgspec.json.encode({**msgspec.json.decode(RESPONSES_BODY), "stream": True})

    def json_chat() -> None:
        ex, attempt = exchange(CHAT_BODY, chat)
        upstream_body(ex, attempt)
        VENDOR.map_json(ex, attempt, completion)

    def json_translated() -> None:
        ex, attempt = exchange(RESPONSES_BODY, responses)
        draft_view(ex, attempt)
        BRIDGE.map_json(ex, attempt, completion)

    def json_native() -> None:
        ex, attempt = exchange(RESPONSES_BODY, responses)
        upstream_body(ex, attempt)
        openai_responses.map_json("p", attempt, native_json)

    def stream_chat() -> None:
        mapper = OpenAIStreamMapper("p", strip_usage=True)
        for frame in chunks:
            mapper.feed(frame)

    def stream_translated() -> None:
        ex, attempt = exchange(stream_body, responses, stream=True)
        draft_view(ex, attempt)
        mapper = BRIDGE.stream_mapper(ex, attempt)
        for frame in chunks:
            mapper.feed(frame)
        responses.end_frames(ex, None)

    def stream_native() -> None:
        ex, _attempt = exchange(stream_body, responses, stream=True)
        mapper = openai_responses.EventRelay("p", ex)
        for frame in native_events:
            mapper.feed(frame)

    cases: dict[str, Callable[[], object]] = {
        "json: chat pass-through": json_chat,
        "json: responses -> chat (translated)": json_translated,
        "json: responses pass-through": json_native,
        "stream: chat pass-through": stream_chat,
        "stream: responses <- chat (translated)": stream_translated,
        "stream: responses pass-through": stream_native,
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(turns):
        for name, fn in cases.items():
            samples[name].append(per_call_us(fn, seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


def draft_view(ex: Exchange, attempt: Attempt) -> None:
    """What ``ResponsesBridge.send`` does before the network: the draft, the chat view, the
    vendor's body of it (no earlier turns to load)."""
    from relay.providers.responses import draft_of

    draft_of(ex, None).translated = True
    upstream_body(_view_sync(ex, attempt), attempt)


def _view_sync(ex: Exchange, attempt: Attempt) -> Exchange:
    coroutine = BRIDGE._view(ex, attempt, ex.translation)
    try:
        coroutine.send(None)  # completes without awaiting anything (no previous_response_id)
    except StopIteration as done:
        view: Exchange = done.value
        return view
    raise RuntimeError("the view needed to wait")


def through_server(count: int, turns: int, store: bool) -> dict[str, float]:
    import relay
    from tests.fakes.openai_upstream import start_fake_upstream
    from tests.integration.gateway import Gateway

    package_root = str(Path(relay.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    words = " ".join(WORDS)
    with start_fake_upstream("k") as oa:
        provider = {"kind": "openai", "base_url": oa.base_url, "api_key": "k"}
        config = {
            "server": {"log_level": "warning"},
            "providers": {"openai": provider, "vendor": {**provider, "native_responses": False}},
            "models": {
                "gpt": {"provider": "openai", "model": "gpt-4o-mini"},
                "vendor-gpt": {"provider": "vendor", "model": "gpt-4o-mini"},
            },
        }
        gw = Gateway(config, Path(tempfile.mkdtemp()))
        try:
            cases: dict[str, tuple[str, bytes]] = {}
            for stream in (False, True):
                kind = "stream" if stream else "json"
                chat = {"model": "gpt", "messages": [{"role": "user", "content": words}]}
                cases[f"{kind}: chat pass-through"] = (
                    "/v1/chat/completions",
                    msgspec.json.encode({**chat, "stream": stream}),
                )
                body = {"model": "vendor-gpt", "input": words, "stream": stream, "store": store}
                cases[f"{kind}: responses -> chat (translated)"] = (
                    "/v1/responses",
                    msgspec.json.encode(body),
                )
                cases[f"{kind}: responses pass-through"] = (
                    "/v1/responses",
                    msgspec.json.encode({**body, "model": "gpt"}),
                )
            return server_cpu_us(gw, cases, turns, count)
        finally:
            gw.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.2, help="CPU per case and turn")
    parser.add_argument("--server", action="store_true", help="also measure through relay serve")
    parser.add_argument("--requests", type=int, default=300, help="per case and turn (--server)")
    parser.add_argument("--store", action="store_true", help="translated responses are stored")
    args = parser.parse_args()
    results = in_process(args.turns, args.seconds)
    pairs = [
        ("json: responses -> chat (translated)", "json: chat pass-through"),
        ("stream: responses <- chat (translated)", "stream: chat pass-through"),
    ]
    report("in process (provider-side Python CPU, median of turns)", results, pairs)
    if args.server:
        served = through_server(args.requests, max(args.turns // 2, 2), args.store)
        report(
            "through relay serve (gateway CPU per request, all processes, median of turns)",
            served,
            [
                ("json: responses -> chat (translated)", "json: chat pass-through"),
                ("json: responses pass-through", "json: chat pass-through"),
                ("stream: responses -> chat (translated)", "stream: chat pass-through"),
                ("stream: responses pass-through", "stream: chat pass-through"),
            ],
        )
    print(json.dumps({"python": sys.version.split()[0], "store": args.store}))


if __name__ == "__main__":
    main()
