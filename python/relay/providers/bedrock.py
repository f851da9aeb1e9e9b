"""AWS Bedrock (``kind: bedrock``) through the Converse and ConverseStream APIs.

A translator: OpenAI chat requests become Converse bodies (:mod:`bedrock_request`), Converse
answers and ConverseStream events become OpenAI JSON and chunks (:mod:`bedrock_response`).
Requests are signed with SigV4 by botocore's signer (the optional extra
``relay-gateway[bedrock]``), with the credentials of the config or, when it has none, the
standard AWS environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``). Only those: the gateway never probes instance metadata or files at
request time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import msgspec

from relay.config.model import ProviderConfig
from relay.errors import GatewayError, InvalidRequest, UpstreamStatusError, scrub_secrets
from relay.exchange import Attempt, Endpoint, Exchange
from relay.providers.base import ProviderBase
from relay.providers.bedrock_request import converse_body
from relay.providers.bedrock_response import ConverseStreamMapper, chat_completion
from relay.stage import Outbound
from relay.wire.decode import decode_json

_EVENT_STREAM = "application/vnd.amazon.eventstream"
# AWS error types (x-amzn-ErrorType, or an exception event's type) -> status for the client.
_STATUS = {
    "validationexception": 400,
    "resourcenotfoundexception": 404,
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "modeltimeoutexception": 504,
    "serviceunavailableexception": 503,
    "modelnotreadyexception": 503,
}
_AUTH_ERRORS = ("accessdeniedexception", "unrecognizedclientexception", "invalidsignature")


class Bedrock(ProviderBase):
    """Converse for OpenAI-dialect chat clients; see the module docstring."""

    kind = "bedrock"
    credential_settings = ("aws_access_key_id", "aws_secret_access_key", "region")
    wire: ClassVar[str] = "bedrock"
    endpoints = frozenset({Endpoint.CHAT})

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        self._request_type = AWSRequest
        self._signer_type = SigV4Auth
        self.region = config.region or ""
        endpoint = config.endpoint_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"
        self.endpoint = endpoint.rstrip("/")
        key = config.aws_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = config.aws_secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
        token = (
            config.aws_session_token
            if config.aws_access_key_id
            else os.environ.get("AWS_SESSION_TOKEN")
        )
        self._credentials = Credentials(key, secret, token) if key and secret else None
        self._secret_values = tuple(v for v in (secret, token) if v)

    def check(self, ex: Exchange) -> None:
        super().check(ex)
        if ex.dialect is not None and ex.dialect.wire != "openai":
            raise InvalidRequest(
                f"provider '{self.name}' (kind bedrock) serves OpenAI chat completions only; "
                f"this request came in the {ex.dialect.wire} format"
            )
        if self._credentials is None:
            raise UpstreamStatusError(
                502,
                f"provider '{self.name}' has no AWS credentials: set "
                f"providers.{self.name}.aws_access_key_id and aws_secret_access_key, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the gateway's environment",
                error_type="upstream_error",
                code="upstream_auth_failed",
            )

    def signed_headers(self, url: str, body: bytes, stream: bool) -> dict[str, str]:
        """The request headers, SigV4-signed for ``bedrock`` in the configured region."""
        request = self._request_type(
            method="POST",
            url=url,
            data=body,
            headers={
                "content-type": "application/json",
                "accept": _EVENT_STREAM if stream else "application/json",
            },
        )
        self._signer_type(self._credentials, "bedrock", self.region).add_auth(request)
        return dict(request.headers.items())

    async def prepare(self, ex: Exchange, attempt: Attempt) -> Outbound:
        request: dict[str, Any] = decode_json(ex.body)
        deployment = attempt.deployment
        body = converse_body(
            request,
            provider=self.name,
            model=deployment.public_model,
            drop_unsupported=deployment.drop_unsupported_params,
        )
        operation = "converse-stream" if ex.stream else "converse"
        url = f"{self.endpoint}/model/{quote(deployment.upstream_model, safe='')}/{operation}"
        headers = self.signed_headers(url, body, ex.stream)
        headers["x-request-id"] = ex.request_id
        return Outbound(url, headers, body, url_encoded=True)

    def map_json(self, ex: Exchange, attempt: Attempt, body: bytes) -> bytes:
        out, usage, text = chat_completion(
            body,
            ident="chatcmpl-" + ex.request_id,
            model=attempt.upstream_model,
            provider=self.name,
        )
        attempt.usage = usage
        attempt.text = lambda: text
        return out

    def stream_mapper(self, ex: Exchange, attempt: Attempt) -> ConverseStreamMapper:
        mapper = ConverseStreamMapper(
            self.name,
            ident="chatcmpl-" + ex.request_id,
            model=attempt.upstream_model,
            include_usage=ex.client_wants_usage,
        )
        return mapper

    def stream_error(self, raw: bytes) -> GatewayError:
        try:
            error = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            error = {}
        name = str(error.get("type") or "") if isinstance(error, dict) else ""
        message = str(error.get("message") or "") if isinstance(error, dict) else ""
        if name == "upstream_bad_response":
            return UpstreamStatusError(
                502, message, error_type="upstream_error", code="upstream_bad_response"
            )
        return UpstreamStatusError(
            _STATUS.get(name.lower(), 502),
            scrub_secrets(message or f"provider '{self.name}' reported {name}", *self.secrets()),
            error_type="upstream_error",
            code=name or None,
        )

    def error_from(
        self, attempt: Attempt, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        name = headers.get("x-amzn-errortype", "").split(":", 1)[0]
        try:
            decoded = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            decoded = None
        message = None
        if isinstance(decoded, dict):
            found = decoded.get("message") or decoded.get("Message")
            message = found if isinstance(found, str) else None
        if not message:
            message = body[:500].decode("utf-8", "replace").strip() or "(empty body)"
        lowered = name.lower()
        if status in (401, 403) or lowered in _AUTH_ERRORS:
            return self.credentials_refused(f"{status} {name or 'error'}")
        error_type = "invalid_request_error" if status in (400, 404, 422) else "upstream_error"
        retry = (("retry-after", headers["retry-after"]),) if "retry-after" in headers else ()
        return UpstreamStatusError(
            _STATUS.get(lowered, status) if status >= 400 else 502,
            scrub_secrets(f"Bedrock: {message}", *self.secrets()),
            error_type=error_type,
            code=name or None,
            headers=retry,
        )

    def secrets(self) -> tuple[str, ...]:
        return self._secret_values
