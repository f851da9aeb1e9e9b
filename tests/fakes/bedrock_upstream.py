"""A fake Bedrock runtime: Converse and ConverseStream over real HTTP, checking what it gets
against the documented format and answering with documented bodies and event-stream frames.

Checked on every request (a violation is answered like Bedrock would, 400/403, and recorded):

* ``POST /model/{modelId}/converse`` or ``/converse-stream``, the model id percent-encoded;
* a SigV4 signature for service ``bedrock`` in ``REGION``, verified with botocore against the
  fake's own credentials (``ACCESS_KEY``/``SECRET_KEY``, or ``ENV_ACCESS_KEY``... with a session
  token), over the raw path, the signed headers and the body;
* the body: only documented members; ``messages`` alternating user/assistant from a user turn;
  blocks of exactly one kind; ``toolResult`` ids that answer an earlier ``toolUse``;
  ``inferenceConfig`` and ``toolConfig`` shapes.

Scenarios by model id: ``throttled`` (429 ThrottlingException), ``invalid`` (400
ValidationException), ``stream-exception`` (text, then a modelStreamErrorException event),
``corrupt-stream`` (text, then a frame whose CRC is wrong), ``cached`` (usage with cache reads);
any other id answers ``Echo: <last user text>``, or one tool call ``{"x": 1}`` when
``toolChoice`` is ``any`` or ``tool``. Tokens: input = words of every text block + 3 per
message, output = words of the answer.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.threaded import Recorder, serve
from tests.native.eventstream_reference import event, exception

REGION = "us-west-2"
ACCESS_KEY, SECRET_KEY = "AKIAFAKEBEDROCK00001", "fake-secret-key-for-tests"
ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_TOKEN = "AKIAFAKEBEDROCKENV01", "env-secret", "env-session-tok"
KEYS = {ACCESS_KEY: (SECRET_KEY, None), ENV_ACCESS_KEY: (ENV_SECRET_KEY, ENV_TOKEN)}
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"  # Bedrock pads event payloads with "p"
BODY_KEYS = {
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
}
BLOCK_KEYS = {"text", "image", "document", "video", "toolUse", "toolResult", "guardContent"}
INFERENCE_KEYS = {"maxTokens", "temperature", "topP", "stopSequences"}


class Invalid(Exception):
    """The request breaks a documented rule."""


def aws_error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
    )


def verify_signature(entry: dict[str, Any], host: str) -> None:
    headers = entry["headers"]
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise PermissionError("missing SigV4 Authorization header")
    fields = dict(
        part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 ") :].split(",")
    )
    key, date, region, service, terminal = fields["Credential"].split("/")
    if (region, service, terminal) != (REGION, "bedrock", "aws4_request"):
        raise PermissionError(f"credential scope {region}/{service}/{terminal}")
    if key not in KEYS:
        raise PermissionError("unknown access key")
    secret, token = KEYS[key]
    if token is not None and headers.get("x-amz-security-token") != token:
        raise PermissionError("missing or wrong session token")
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise PermissionError("host and x-amz-date must be signed")
    request = AWSRequest(
        method=entry["method"],
        url=f"http://{host}{entry['raw_path']}",
        data=entry["body"],
        headers={h: headers[h] for h in signed if h != "host"},
    )
    stamp = headers["x-amz-date"]
    skew = datetime.datetime.now(datetime.UTC) - datetime.datetime.strptime(
        stamp, "%Y%m%dT%H%M%SZ"
    ).replace(tzinfo=datetime.UTC)
    if abs(skew.total_seconds()) > 300 or not stamp.startswith(date):
        raise PermissionError("x-amz-date out of range")
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key, secret, token), "bedrock", REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != fields["Signature"]:
        raise PermissionError("signature mismatch")


def check_body(body: Any) -> None:
    if not isinstance(body, dict) or set(body) - BODY_KEYS:
        raise Invalid(f"unknown members: {sorted(set(body) - BODY_KEYS)}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    tool_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = "user" if i % 2 == 0 else "assistant"
        if message.get("role") != role or set(message) != {"role", "content"}:
            raise Invalid(f"messages.{i}: expected role {role} (turns alternate from user)")
        if not message["content"]:
            raise Invalid(f"messages.{i}.content: empty")
        for block in message["content"]:
            if len(block) != 1 or not set(block) <= BLOCK_KEYS:
                raise Invalid(f"messages.{i}: a content block has exactly one member: {block}")
            if "toolUse" in block:
                use = block["toolUse"]
                if role != "assistant" or set(use) != {"toolUseId", "name", "input"}:
                    raise Invalid(f"messages.{i}: bad toolUse {use}")
                tool_ids.add(use["toolUseId"])
            if "toolResult" in block:
                result = block["toolResult"]
                if role != "user" or result.get("toolUseId") not in tool_ids:
                    raise Invalid(f"messages.{i}: toolResult answers no earlier toolUse")
            if "image" in block and set(block["image"]) != {"format", "source"}:
                raise Invalid("image: format and source.bytes")
    for block in body.get("system", []):
        if set(block) != {"text"}:
            raise Invalid("system: text blocks only")
    if set(body.get("inferenceConfig", {})) - INFERENCE_KEYS:
        raise Invalid("inferenceConfig: unknown members")
    if "toolConfig" in body:
        config = body["toolConfig"]
        for tool in config.get("tools", []):
            spec = tool.get("toolSpec", {})
            if not spec.get("name") or "json" not in spec.get("inputSchema", {}):
                raise Invalid("toolConfig.tools: toolSpec needs name and inputSchema.json")
        choice = config.get("toolChoice", {"auto": {}})
        if len(choice) != 1 or not set(choice) <= {"auto", "any", "tool"}:
            raise Invalid("toolConfig.toolChoice: one of auto, any, tool")
    elif any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"]):
        raise Invalid("toolConfig is required when messages hold tool blocks")


def words(text: str) -> int:
    return len(text.split())


def plan(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
    """(content blocks, stopReason, usage) of the answer."""
    texts = [b["text"] for b in body.get("system", [])]
    last_user = ""
    for message in body["messages"]:
        for block in message["content"]:
            if "text" in block:
                texts.append(block["text"])
                if message["role"] == "user":
                    last_user = block["text"]
    prompt = sum(words(t) for t in texts) + 3 * len(body["messages"])
    choice = body.get("toolConfig", {}).get("toolChoice", {})
    if "any" in choice or "tool" in choice:
        name = (
            choice.get("tool", {}).get("name") or body["toolConfig"]["tools"][0]["toolSpec"]["name"]
        )
        blocks = [{"toolUse": {"toolUseId": "tooluse_fake0001", "name": name, "input": {"x": 1}}}]
        return (
            blocks,
            "tool_use",
            {"inputTokens": prompt, "outputTokens": 2, "totalTokens": prompt + 2},
        )
    reply = "Echo: " + last_user
    limit = body.get("inferenceConfig", {}).get("maxTokens")
    stop = "end_turn"
    if isinstance(limit, int) and limit < words(reply):
        reply, stop = " ".join(reply.split()[:limit]), "max_tokens"
    usage = {
        "inputTokens": prompt,
        "outputTokens": words(reply),
        "totalTokens": prompt + words(reply),
    }
    return [{"text": reply}], stop, usage


class FakeBedrock:
    """The app and its recordings; ``endpoint_url`` goes in ``providers.X.endpoint_url``."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.endpoint_url = ""
        self.app = web.Application()
        self.app.router.add_post("/model/{model}/{operation}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        entry = await self.recorder.record(request)
        model = unquote(request.match_info["model"])
        entry["model"] = model
        operation = request.match_info["operation"]
        try:
            verify_signature(entry, request.host)
        except PermissionError as exc:
            entry["refused"] = str(exc)
            return aws_error(
                403,
                "InvalidSignatureException",
                f"The request signature we calculated does not match the signature you provided ({exc})",
            )
        if operation not in ("converse", "converse-stream"):
            return aws_error(404, "UnknownOperationException", "unknown operation")
        try:
            body = json.loads(entry["body"])
            entry["json"] = body
            check_body(body)
        except (Invalid, ValueError) as exc:
            entry["refused"] = str(exc)
            return aws_error(400, "ValidationException", str(exc))
        if model == "throttled":
            return aws_error(
                429, "ThrottlingException", "Too many requests, please wait before trying again."
            )
        if model == "invalid":
            return aws_error(
                400, "ValidationException", "The model returned the following errors: bad input"
            )
        blocks, stop, usage = plan(body)
        if model == "cached":
            usage = {**usage, "cacheReadInputTokens": 5, "cacheWriteInputTokens": 2}
            usage["totalTokens"] += 7
        if operation == "converse":
            return web.json_response(
                {
                    "output": {"message": {"role": "assistant", "content": blocks}},
                    "stopReason": stop,
                    "usage": usage,
                    "metrics": {"latencyMs": 42},
                }
            )
        if request.headers.get("accept") != "application/vnd.amazon.eventstream":
            return aws_error(
                400, "ValidationException", "accept: application/vnd.amazon.eventstream"
            )
        response = web.StreamResponse(
            headers={"content-type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        for frame in self.frames(model, blocks, stop, usage):
            await response.write(frame)
        await response.write_eof()
        return response

    def frames(
        self, model: str, blocks: list[dict[str, Any]], stop: str, usage: dict[str, int]
    ) -> Iterator[bytes]:
        def ev(kind: str, payload: dict[str, Any]) -> bytes:
            return event(kind, json.dumps({**payload, "p": PADDING[: len(kind)]}).encode())

        yield ev("messageStart", {"role": "assistant"})
        for index, block in enumerate(blocks):
            if "text" in block:
                pieces = block["text"].split(" ")
                for j, piece in enumerate(pieces):
                    text = piece if j == 0 else " " + piece
                    frame = ev(
                        "contentBlockDelta", {"delta": {"text": text}, "contentBlockIndex": index}
                    )
                    # Frames split across network reads, as TCP may deliver them.
                    yield frame[:7]
                    yield frame[7:]
                    if model in ("stream-exception", "corrupt-stream") and j == 1:
                        if model == "stream-exception":
                            yield exception(
                                "modelStreamErrorException",
                                b'{"message":"The model failed mid-stream","originalStatusCode":500}',
                            )
                        else:
                            bad = bytearray(
                                ev(
                                    "contentBlockDelta",
                                    {"delta": {"text": " x"}, "contentBlockIndex": index},
                                )
                            )
                            bad[-1] ^= 0xFF
                            yield bytes(bad)
                        return
            else:
                use = block["toolUse"]
                yield ev(
                    "contentBlockStart",
                    {
                        "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}},
                        "contentBlockIndex": index,
                    },
                )
                arguments = json.dumps(use["input"])
                for k in range(0, len(arguments), 3):
                    yield ev(
                        "contentBlockDelta",
                        {
                            "delta": {"toolUse": {"input": arguments[k : k + 3]}},
                            "contentBlockIndex": index,
                        },
                    )
            yield ev("contentBlockStop", {"contentBlockIndex": index})
        yield ev("messageStop", {"stopReason": stop})
        yield ev("metadata", {"usage": usage, "metrics": {"latencyMs": 42}})


@contextmanager
def start_fake_bedrock() -> Iterator[FakeBedrock]:
    fake = FakeBedrock()
    with serve(fake.app) as url:
        fake.endpoint_url = url
        yield fake
