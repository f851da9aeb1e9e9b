"""GET /admin/config shows the configuration without its secrets."""

from __future__ import annotations

import json

import msgspec

from relay.config import parse_config
from relay.config.redact import REDACTED, is_secret_name, redact_value, redacted

TEXT = """
providers:
  o: {kind: openai, base_url: "https://u:base-pass@h/v1", api_key: sk-canary-1,
      headers: {Authorization: "Bearer canary-2", X-Trace: keep-me}}
  b: {kind: bedrock, region: us-east-1, aws_access_key_id: AKIACANARY3,
      aws_secret_access_key: canary-4, aws_session_token: canary-5}
models: {m: {provider: o}}
auth: {admin_key: admin-canary-6-0123456789}
database: {url: "postgresql://relay:canary-7@db:5432/relay"}
redis: {password: canary-8}
telemetry: {endpoint: "http://collector:4318"}
ui: {session_secret: canary-10-0123456789abcdef0123, oidc: {issuer: "https://i", client_id: relay,
     client_secret: canary-11, redirect_uri: "https://relay.example/ui/oidc/callback"}}
"""


def test_every_secret_is_redacted_and_the_rest_kept() -> None:
    config = parse_config(TEXT, "c.yaml", {})
    # A plug-in's policy (its settings are its own): names decide, not a list of fields.
    plugin = {"kind": "webhook", "url": "http://g", "api_key": "canary-9", "threshold": 3}
    config = msgspec.structs.replace(config, policies={"guard": plugin})
    shown = redacted(config)
    text = json.dumps(shown)
    for n in range(1, 12):
        assert f"canary-{n}" not in text and f"CANARY{n}" not in text, n
    assert "base-pass" not in text
    o = shown["providers"]["o"]
    assert o["api_key"] == REDACTED
    assert o["headers"] == {"Authorization": REDACTED, "X-Trace": "keep-me"}
    assert o["base_url"] == f"https://u:{REDACTED}@h/v1"
    assert shown["database"]["url"] == f"postgresql://relay:{REDACTED}@db:5432/relay"
    assert shown["policies"]["guard"] == {
        "kind": "webhook",
        "url": "http://g",
        "api_key": REDACTED,
        "threshold": 3,
    }
    assert shown["telemetry"]["endpoint"] == "http://collector:4318"
    assert shown["providers"]["b"]["region"] == "us-east-1"
    assert shown["models"]["m"]["targets"][0]["provider"] == "o"
    # Unset secrets stay visible as unset.
    assert shown["providers"]["b"]["api_key"] is None


def test_secret_names() -> None:
    for name in (
        "api_key",
        "admin_key",
        "client_secret",
        "session_secret",
        "password",
        "bearer_token",
        "aws_secret_access_key",
        "x-api-key",
        "Authorization",
    ):
        assert is_secret_name(name), name
    for name in (
        "key_refresh_s",
        "tokens_per_minute",
        "max_tokens_default",
        "client_id",
        "session_hours",
        "default_max_tokens",
    ):
        assert not is_secret_name(name), name


def test_a_value_alone() -> None:
    assert redact_value("url", "redis://:pw@h:6379/0") == f"redis://:{REDACTED}@h:6379/0"
    assert redact_value("password", "pw") == REDACTED
    assert redact_value("port", 8080) == 8080
