"""Fake Azure OpenAI, Mistral, Ollama and vLLM servers in one aiohttp app over real HTTP, each
under its own prefix, each checking what it receives against its documentation:

* ``/azure``: ``POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}``
  with ``?api-version=API_VERSION`` and ``api-key: AZURE_KEY`` (or ``Authorization: Bearer
  AZURE_TOKEN``), never both; answers with the deployment as ``model``; a deployment other than
  ``DEPLOYMENTS`` is 404 ``DeploymentNotFound``.
* ``/mistral/v1``: ``Authorization: Bearer MISTRAL_KEY``; chat and embeddings only; a request
  member outside Mistral's documented set is a 422 (``stream_options`` and ``seed`` included);
  streams end with usage on the last chunk whether asked or not.
* ``/ollama/v1``: no key needed; models are pulled names such as ``llama3:8b`` (others 404
  ``model "x" not found, try pulling it first``).
* ``/vllm/v1``: ``Authorization: Bearer VLLM_KEY``; errors in vLLM's flat shape.

Answers: ``Echo: <last user text>``; usage: prompt = words of every message + 3 each,
completion = words of the answer; streams: role chunk, one chunk per word, finish chunk, the
usage chunk when ``stream_options.include_usage`` (Mistral: always, on the finish chunk),
``[DONE]``. ``error-500`` as the model gives a 500 in the vendor's shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from tests.fakes.threaded import Recorder, serve

API_VERSION = "2024-10-21"
AZURE_KEY, AZURE_TOKEN = "azure-key-0123456789", "entra-token-abcdef"
DEPLOYMENTS = {"gpt4o-prod", "gpt35-legacy", "embed-small"}
MISTRAL_KEY = "mistral-key-0123456789"
VLLM_KEY = "token-abc123"
OLLAMA_MODELS = {"llama3:8b", "nomic-embed-text:latest"}
MISTRAL_CHAT = {
    "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
    "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n",
    "safe_prompt", "parallel_tool_calls", "prediction",
}  # fmt: skip
MISTRAL_EMBED = {"model", "input", "output_dimension", "output_dtype", "encoding_format"}


def words(text: str) -> int:
    return len(text.split())


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class FakeVendors:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.url = ""
        app = web.Application()
        app.router.add_post("/azure/openai/deployments/{deployment}/{op:.+}", self.azure)
        app.router.add_post("/mistral/v1/{op:.+}", self.mistral)
        app.router.add_post("/ollama/v1/{op:.+}", self.ollama)
        app.router.add_post("/vllm/v1/{op:.+}", self.vllm)
        self.app = app

    # -- vendors --------------------------------------------------------------------------
    async def azure(self, request: web.Request) -> web.StreamResponse:
        entry = await self.recorder.record(request)
        headers = entry["headers"]
        if request.query.get("api-version") != API_VERSION:
            return self._openai_error(404, "Resource not found", "404")
        key, bearer = headers.get("api-key"), headers.get("authorization")
        if (key and bearer) or (key != AZURE_KEY and bearer != f"Bearer {AZURE_TOKEN}"):
            return self._openai_error(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint.",
                "401",
            )
        deployment = request.match_info["deployment"]
        if deployment not in DEPLOYMENTS:
            return self._openai_error(
                404,
                "The API deployment for this resource does not exist.",
                "DeploymentNotFound",
            )
        return await self._answer(request, entry, model=deployment)

    async def mistral(self, request: web.Request) -> web.StreamResponse:
        entry = await self.recorder.record(request)
        if entry["headers"].get("authorization") != f"Bearer {MISTRAL_KEY}":
            return web.json_response({"message": "Unauthorized", "request_id": "r1"}, status=401)
        op = request.match_info["op"]
        allowed = {"chat/completions": MISTRAL_CHAT, "embeddings": MISTRAL_EMBED}.get(op)
        if allowed is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        extra = sorted(set(json.loads(entry["body"])) - allowed)
        if extra:
            return web.json_response(
                {
                    "object": "error",
                    "message": {
                        "detail": [
                            {
                                "type": "extra_forbidden",
                                "loc": ["body", k],
                                "msg": "Extra inputs are not permitted",
                            }
                            for k in extra
                        ]
                    },
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
                status=422,
            )
        return await self._answer(request, entry, usage_always=True)

    async def ollama(self, request: web.Request) -> web.StreamResponse:
        entry = await self.recorder.record(request)
        model = json.loads(entry["body"]).get("model")
        if model not in OLLAMA_MODELS:
            return self._openai_error(
                404, f'model "{model}" not found, try pulling it first', None, "api_error"
            )
        return await self._answer(request, entry)

    async def vllm(self, request: web.Request) -> web.StreamResponse:
        entry = await self.recorder.record(request)
        if entry["headers"].get("authorization") != f"Bearer {VLLM_KEY}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        if json.loads(entry["body"]).get("model") == "error-500":
            return web.json_response(
                {
                    "object": "error",
                    "message": "engine died",
                    "type": "InternalServerError",
                    "param": None,
                    "code": 500,
                },
                status=500,
            )
        return await self._answer(request, entry)

    # -- OpenAI-shaped answers ------------------------------------------------------------
    @staticmethod
    def _openai_error(
        status: int, message: str, code: str | None, etype: str = "invalid_request_error"
    ) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": etype, "param": None, "code": code}},
            status=status,
        )

    async def _answer(
        self,
        request: web.Request,
        entry: dict[str, Any],
        *,
        model: str | None = None,
        usage_always: bool = False,
    ) -> web.StreamResponse:
        body = json.loads(entry["body"])
        entry["json"] = body
        model = model or body.get("model")
        op = request.match_info["op"]
        if op == "embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            tokens = sum(words(str(i)) for i in inputs)
            return web.json_response(
                {
                    "object": "list",
                    "data": [
                        {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                        for i in range(len(inputs))
                    ],
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        chat = op == "chat/completions"
        if chat:
            messages = body["messages"]
            prompt = sum(words(text_of(m.get("content"))) + 3 for m in messages)
            last = next(
                (text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), ""
            )
        else:
            last = body["prompt"]
            prompt = words(last)
        reply = "Echo: " + last
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": words(reply),
            "total_tokens": prompt + words(reply),
        }
        base = {"id": "cmpl-fake", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            choice: dict[str, Any] = (
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                }
                if chat
                else {"index": 0, "text": reply, "finish_reason": "stop"}
            )
            obj = "chat.completion" if chat else "text_completion"
            return web.json_response({**base, "object": obj, "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"

        async def send(choices: list[Any], extra: dict[str, Any] | None = None) -> None:
            data = {**base, "object": obj, "choices": choices, **(extra or {})}
            await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")

        def choice_of(piece: str | None, finish: str | None = None) -> dict[str, Any]:
            if chat:
                delta = {} if piece is None else {"content": piece}
                return {"index": 0, "delta": delta, "finish_reason": finish}
            return {"index": 0, "text": piece or "", "finish_reason": finish}

        if chat:
            await send(
                [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
            )
        for i, word in enumerate(reply.split(" ")):
            await send([choice_of(word if i == 0 else " " + word)])
        if usage_always:
            await send([choice_of(None, "stop")], {"usage": usage})
        else:
            await send([choice_of(None, "stop")])
            if (body.get("stream_options") or {}).get("include_usage"):
                await send([], {"usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@contextmanager
def start_fake_vendors() -> Iterator[FakeVendors]:
    fake = FakeVendors()
    with serve(fake.app) as url:
        fake.url = url
        yield fake
