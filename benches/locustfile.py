"""A realistic mix of gateway traffic for locust: what ``make locust`` runs (``locust_run.py``).

Each simulated user is a service calling the gateway's ``/v1/chat/completions`` with a mix of:

====================  ======  =============================================================
task                  weight  what it checks
====================  ======  =============================================================
chat short            30      a one-line question; 200, an assistant message
chat long             10      a prompt of a few thousand words (a document to summarise)
chat stream           20      SSE: content events, then ``data: [DONE]`` and no error event;
                              its time to first token is recorded as ``chat stream (TTFT)``
chat tools            10      a function the model must call; 200, ``finish_reason`` tool_calls
chat repeated         20      one of a few fixed prompts at temperature 0: the cache answers
                              the repeats (recorded as ``chat repeated (hit)`` or ``(miss)``)
bad request           10      invalid JSON, a field of the wrong type, an unknown model
====================  ======  =============================================================

A bad request is *expected* to fail: it counts as a success when the gateway refuses it with
the right status (400 or 404) and an OpenAI error envelope, and as a failure when it does
anything else. So every failure locust reports is unexpected; the expected refusals are counted
apart (``bad request (expected 4xx)``). Every user runs each task once when it starts, so even
a short run covers the whole mix.

``--summary-json PATH`` writes the final figures as JSON (per request name: count, failures,
p50/p95/p99 in ms), which ``locust_run.py`` prints and the tests read. The target is the
gateway's root (``--host http://127.0.0.1:8080``); model names: ``--model`` (default ``chat``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.stats import StatsEntry

ROUTE = "/v1/chat/completions"
BAD = "bad request (expected 4xx)"
TTFT = "chat stream (TTFT)"  # a figure of the streams, not a request of its own
PERCENTILES = (0.5, 0.95, 0.99)

WORDS = [
    "gateway",
    "tenant",
    "budget",
    "latency",
    "stream",
    "token",
    "provider",
    "deployment",
    "cache",
    "ledger",
    "retry",
    "fallback",
    "circuit",
    "breaker",
    "quota",
    "prompt",
    "completion",
    "embedding",
    "router",
    "worker",
    "replica",
    "invoice",
    "contract",
    "summary",
    "customer",
    "order",
    "refund",
    "shipment",
    "warehouse",
    "policy",
    "incident",
]
QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about load balancers.",
    "Summarise the plot of Hamlet in one sentence.",
    "Translate 'good morning' into Spanish.",
    "Give me three names for a coffee shop.",
]
REPEATED = [  # few enough that most repeats are cache hits
    "Classify this ticket: 'my invoice is wrong'. Answer billing, shipping or other.",
    "Extract the city from: 'Ship to 12 rue de Rivoli, Paris'.",
    "Is 'I love this product' positive or negative?",
]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "The status of a customer's order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


def _document(words: int) -> str:
    return " ".join(random.choice(WORDS) for _ in range(words))


def _arguments(parser: Any) -> None:
    parser.add_argument("--model", default="chat", help="the public model name to call")
    parser.add_argument("--summary-json", default="", help="write the final figures here")


events.init_command_line_parser.add_listener(_arguments)  # type: ignore[no-untyped-call]


def summary(environment: Environment) -> dict[str, Any]:
    """Per request name and in total: requests, failures, p50/p95/p99 (ms)."""

    def figures(entry: Any) -> dict[str, Any]:
        return {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            **{
                f"p{round(p * 100)}_ms": entry.get_response_time_percentile(p)
                if entry.num_requests
                else None
                for p in PERCENTILES
            },
        }

    stats = environment.stats
    names = {name: figures(entry) for (name, _method), entry in sorted(stats.entries.items())}
    # Locust's own total counts the TTFT figures as requests too: this one counts requests.
    requests = StatsEntry(stats, "all requests", "", use_response_times_cache=False)
    for (name, _method), entry in stats.entries.items():
        if name != TTFT:
            requests.extend(entry)
    expected = names.get(BAD, {}).get("requests", 0) - names.get(BAD, {}).get("failures", 0)
    return {
        "requests": names,
        "total": figures(requests),
        "unexpected_failures": stats.total.num_failures,
        # exceptions raised by the tasks themselves (a bug here, not in the gateway)
        "exceptions": len(environment.runner.exceptions) if environment.runner else 0,
        "expected_errors": expected,
        "errors": [
            {"name": error.name, "error": str(error.error), "occurrences": error.occurrences}
            for error in stats.errors.values()
        ],
    }


def _write_summary(environment: Environment, **_kwargs: Any) -> None:
    path = getattr(environment.parsed_options, "summary_json", "")
    if path:
        Path(path).write_text(json.dumps(summary(environment), indent=2), encoding="utf-8")


events.quitting.add_listener(_write_summary)  # type: ignore[no-untyped-call]


class GatewayUser(HttpUser):
    """A service that calls the gateway, pausing a little between calls."""

    wait_time = between(0.05, 0.5)

    @property
    def model(self) -> str:
        options = self.environment.parsed_options
        return str(getattr(options, "model", "chat")) if options else "chat"

    def on_start(self) -> None:
        tasks: list[Callable[[GatewayUser], None]] = [
            GatewayUser.chat_short,
            GatewayUser.chat_long,
            GatewayUser.chat_stream,
            GatewayUser.chat_tools,
            GatewayUser.chat_repeated,
            GatewayUser.bad_request,
        ]
        for each in tasks:
            each(self)

    def _chat(self, name: str, body: dict[str, Any], check: Callable[[Any], str | None]) -> None:
        with self.client.post(ROUTE, json=body, name=name, catch_response=True) as response:
            problem = _status(response, 200) or _checked(response, check)
            if problem:
                response.failure(problem)

    @task(30)
    def chat_short(self) -> None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": random.choice(QUESTIONS)}],
            "max_tokens": 64,
            "metadata": {"use_case": "locust"},
        }
        self._chat("chat short", body, _has_content)

    @task(10)
    def chat_long(self) -> None:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You summarise documents for analysts."},
                {"role": "user", "content": "Summarise: " + _document(random.randint(1500, 4000))},
            ],
        }
        self._chat("chat long", body, _has_content)

    @task(10)
    def chat_tools(self) -> None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Where is my order A-1042?"}],
            "tools": [TOOL],
            "tool_choice": "required",
        }

        def check(answer: Any) -> str | None:
            choice = answer["choices"][0]
            if choice["finish_reason"] != "tool_calls" or not choice["message"].get("tool_calls"):
                return f"expected a tool call, got {choice}"
            return None

        self._chat("chat tools", body, check)

    @task(20)
    def chat_repeated(self) -> None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": random.choice(REPEATED)}],
            "temperature": 0,
        }
        # The cache's verdict names the entry, so hits and misses get percentiles of their own.
        with self.client.post(ROUTE, json=body, catch_response=True, name="chat repeated") as r:
            verdict = r.headers.get("x-relay-cache", "none")
            r.request_meta["name"] = f"chat repeated ({verdict})"
            problem = _status(r, 200) or _checked(r, _has_content)
            if problem:
                r.failure(problem)
            elif verdict not in ("hit", "miss"):
                r.failure(f"x-relay-cache is {verdict!r}: the cache is not deciding")

    @task(20)
    def chat_stream(self) -> None:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Tell me a story about " + _document(8)}],
            "stream": True,
        }
        started = time.perf_counter()
        with self.client.post(
            ROUTE, json=body, name="chat stream", stream=True, catch_response=True
        ) as response:
            problem = _status(response, 200)
            first: float | None = None
            events_seen: list[str] = []
            if not problem:
                for line in response.iter_lines(decode_unicode=True):
                    if not line or not line.startswith("data: "):
                        continue
                    data = line[len("data: ") :]
                    events_seen.append(data)
                    if first is None and '"content"' in data:
                        first = time.perf_counter()
                problem = _stream_problem(events_seen)
            if problem:
                response.failure(problem)
        if first is not None and not problem:
            self.environment.events.request.fire(
                request_type="SSE",
                name=TTFT,
                response_time=(first - started) * 1000,
                response_length=0,
                exception=None,
                context={},
            )

    @task(10)
    def bad_request(self) -> None:
        kind = random.choice(("invalid json", "wrong type", "unknown model"))
        if kind == "invalid json":
            kwargs: dict[str, Any] = {
                "data": b'{"model": "chat", "messages": [',
                "headers": {"content-type": "application/json"},
            }
            expected = 400
        elif kind == "wrong type":
            kwargs = {"json": {"model": self.model, "messages": [{"role": "user", "content": 7}]}}
            expected = 400
        else:
            kwargs = {
                "json": {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
            }
            expected = 404
        with self.client.post(ROUTE, name=BAD, catch_response=True, **kwargs) as response:
            problem = _status(response, expected) or _checked(response, _is_error_envelope)
            if problem:
                response.failure(f"{kind}: {problem}")
            else:
                response.success()  # the refusal is the expected answer


def _status(response: Any, expected: int) -> str | None:
    if response.status_code != expected:
        return f"status {response.status_code} (expected {expected}): {response.text[:200]!r}"
    return None


def _checked(response: Any, check: Callable[[Any], str | None]) -> str | None:
    """``check`` on the JSON body; a body that is not JSON, or not of the shape, is a problem."""
    try:
        return check(response.json())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return f"unexpected body ({exc!r}): {response.text[:200]!r}"


def _is_error_envelope(answer: Any) -> str | None:
    if not answer["error"]["message"]:
        return f"an error without a message: {answer}"
    return None


def _has_content(answer: Any) -> str | None:
    message = answer["choices"][0]["message"]
    if not message.get("content"):
        return f"no content in {message}"
    return None


def _stream_problem(events_seen: list[str]) -> str | None:
    if not events_seen or events_seen[-1] != "[DONE]":
        return f"the stream did not end with [DONE] (last event: {events_seen[-1:]})"
    if any('"error"' in data for data in events_seen):
        return "the stream carried an error event"
    if not any('"content"' in data for data in events_seen):
        return "the stream had no content"
    return None
