"""Responses <-> chat translation: the request, the JSON answer, the event stream, the dialect."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from relay.dialects.responses import RESPONSES_DIALECTS
from relay.errors import InvalidRequest, StreamFailed
from relay.exchange import Attempt, Deployment, Exchange, Usage
from relay.native import SseDecoder
from relay.providers.openai_wire import OpenAIStreamMapper
from relay.providers.translate import responses_answer, responses_request
from relay.providers.translate.responses_answer import Draft
from relay.providers.translate.responses_stream import EventStream

DIALECT = RESPONSES_DIALECTS[0]
DEPLOYMENT = Deployment("vendor", "upstream", "m")


def parsed(body: dict[str, Any]) -> Exchange:
    ex = Exchange("req_1", DIALECT.endpoint, msgspec.json.encode(body), {}, dialect=DIALECT)
    DIALECT.parse(ex)
    ex.deployment = DEPLOYMENT
    ex.translation = Draft(ex.request, store=False)
    ex.translation.translated = True
    return ex


def chat(body: dict[str, Any]) -> dict[str, Any]:
    ex = parsed(body)
    items = responses_request.input_items(ex.request)
    return responses_request.chat_request(
        ex.request, items, "m", DEPLOYMENT, "vendor", "vllm", body=ex.body
    )


def test_request_items_to_messages() -> None:
    out = chat(
        {
            "model": "m",
            "instructions": "be brief",
            "input": [
                {"role": "developer", "content": "no jokes"},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "look "},
                    {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"},
                ]},
                {"type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": "calling"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"a\":1}"},
                {"type": "reasoning", "summary": []},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2",
                 "output": [{"type": "input_text", "text": "two"}]},
            ],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"},
                       "strict": True}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
            "max_output_tokens": 100,
            "temperature": 0.3,
            "stream": True,
        }
    )  # fmt: skip
    assert out["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "system", "content": "no jokes"},
        {"role": "user", "content": [
            {"type": "text", "text": "look "},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
        ]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"a\":1}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]  # fmt: skip
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}},
    }  # fmt: skip
    assert (out["max_completion_tokens"], out["temperature"]) == (100, 0.3)
    assert out["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"input": [{"type": "web_search_call"}]}, "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "input[0].content[0].type"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"input": "x", "tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"input": "x", "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "x", "background": True}, "background"),
        ({"input": []}, "input"),
    ],
)  # fmt: skip
def test_request_refusals_name_the_field(body: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat({"model": "m", **body})
    assert info.value.param == where


def test_parameters_mapped_or_passed_on() -> None:
    out = chat(
        {
            "model": "m",
            "input": "x",
            "reasoning": {"effort": "high"},
            "text": {"verbosity": "low"},
            "service_tier": "flex",
            "prompt_cache_key": "k",
            "safety_identifier": "s",
            "truncation": "disabled",
            "include": [],
            "stream_options": {"include_obfuscation": False},
        }
    )
    assert (out["reasoning_effort"], out["verbosity"]) == ("high", "low")
    assert (out["service_tier"], out["prompt_cache_key"], out["safety_identifier"]) == (
        "flex", "k", "s"
    )  # fmt: skip
    assert "truncation" not in out and "include" not in out and "stream_options" not in out


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
        ({"reasoning": {"generate_summary": "concise"}}, "reasoning.generate_summary"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"max_tool_calls": 3}, "max_tool_calls"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"context_management": [{"type": "compaction"}]}, "context_management"),
        ({"some_future_parameter": True}, "some_future_parameter"),
    ],
)
def test_parameters_without_an_equivalent(body: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat({"model": "m", "input": "x", **body})
    assert info.value.param == where and info.value.code == "unsupported_parameter"
    ex = parsed({"model": "m", "input": "x", **body})
    lenient = Deployment("vendor", "upstream", "m", drop_unsupported_params=True)
    out = responses_request.chat_request(
        ex.request, [{"role": "user", "content": "x"}], "m", lenient, "v", "vllm", body=ex.body
    )
    assert where.split(".")[0] not in out and out["messages"] == [{"role": "user", "content": "x"}]


def test_refusals_of_the_chat_path_name_the_responses_field() -> None:
    err = InvalidRequest("verbosity: not supported by provider 'c'", param="verbosity")
    named = responses_request.name_as_sent(err)
    assert (named.param, named.message) == (
        "text.verbosity", "text.verbosity: not supported by provider 'c'"
    )  # fmt: skip


def completion(message: dict[str, Any], finish: str = "stop") -> bytes:
    return msgspec.json.encode(
        {
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
                      "prompt_tokens_details": {"cached_tokens": 6}},
        }
    )  # fmt: skip


def test_answer_text_calls_usage_and_incomplete() -> None:
    ex = parsed({"model": "m", "input": "hi", "metadata": {"k": "v"}, "max_output_tokens": 5})
    attempt = Attempt(DEPLOYMENT)
    message = {
        "role": "assistant",
        "content": "hello",
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "f", "arguments": "{\"x\":1}"}}],
    }  # fmt: skip
    body = responses_answer.from_completion(
        ex, ex.translation, "vendor", attempt, completion(message, "length")
    )
    response = msgspec.json.decode(body)
    assert response["id"].startswith("resp_") and response["object"] == "response"
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    text, call = response["output"]
    assert text["content"][0] == {
        "type": "output_text",
        "text": "hello",
        "annotations": [],
        "logprobs": [],
    }
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == (
        "function_call", "call_9", "f", "{\"x\":1}",
    )  # fmt: skip
    # Every prompt token once: cached ones are part of input_tokens.
    assert response["usage"]["input_tokens"] == 10
    assert response["usage"]["input_tokens_details"] == {
        "cached_tokens": 6,
        "cache_write_tokens": 0,
    }
    assert response["usage"]["total_tokens"] == 14
    assert response["metadata"] == {"k": "v"} and response["max_output_tokens"] == 5
    assert attempt.usage == Usage(10, 4, 6)
    assert attempt.text is not None and attempt.text() == 'hellof{"x":1}'


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def events_of(out: bytes) -> list[dict[str, Any]]:
    return [msgspec.json.decode(e.data) for e in SseDecoder(1 << 20).feed(out)]


def test_stream_text_then_tool_call_then_completed() -> None:
    ex = parsed({"model": "m", "input": "hi", "stream": True})
    ex.stream = True
    mapper = EventStream(ex, ex.translation, OpenAIStreamMapper("p", strip_usage=False), "p")
    frames = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ]  # fmt: skip
    steps = [mapper.feed(frame) for frame in frames]
    assert not steps[0].content and steps[1].content  # the commit point: the first text
    assert steps[-1].done
    ex.usage = Usage(3, 5)
    out = b"".join(s.out for s in steps) + DIALECT.end_frames(ex, None)
    events = events_of(out)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    final = events[-1]["response"]
    item = final["output"][0]
    part = {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
    assert item == {"id": item["id"], "type": "message", "status": "completed", "role": "assistant", "content": [part]}  # fmt: skip
    ids = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    assert events[6] == {"type": "response.output_text.done", "sequence_number": 6, **ids, "text": "Hello", "logprobs": []}  # fmt: skip
    assert events[7] == {"type": "response.content_part.done", "sequence_number": 7, **ids, "part": part}  # fmt: skip
    assert events[8] == {"type": "response.output_item.done", "sequence_number": 8, "output_index": 0, "item": item}  # fmt: skip
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["output"][1]["arguments"] == '{"x":1}'
    assert final["usage"]["input_tokens"] == 3 and final["usage"]["output_tokens"] == 5
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )


def test_error_event_is_numbered_after_the_last_event() -> None:
    ex = parsed({"model": "m", "input": "hi", "stream": True})
    mapper = EventStream(ex, ex.translation, OpenAIStreamMapper("p", strip_usage=False), "p")
    out = mapper.feed(chunk({"content": "a"})).out
    frame = DIALECT.error_frame(StreamFailed("boom"), ex)
    events = events_of(out + frame)
    assert events[-1] == {
        "type": "error", "code": "stream_failed", "message": "boom", "param": None,
        "sequence_number": events[-2]["sequence_number"] + 1,
    }  # fmt: skip
    assert (
        msgspec.json.decode(DIALECT.error_body(StreamFailed("x")))["error"]["code"]
        == "stream_failed"
    )
