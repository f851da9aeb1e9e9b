"""The configuration handed to workers comes back exactly as the main process validated it."""

from __future__ import annotations

from relay.config import parse_config
from relay.config.handoff import HANDOFF_VAR, publish, received

TEXT = """
server: {port: 9001, log_level: debug}
providers:
  o: {kind: openai, base_url: "http://h/v1", api_key: "${KEY}", headers: {X-A: b}, timeouts: {read_s: 3}}
models:
  m: {targets: [{provider: o, model: up}], pricing: {input: 1.5, output: 2, cached: 0.5}}
"""


def test_round_trip_is_exact() -> None:
    config = parse_config(TEXT, "c.yaml", {"KEY": "sk-1"})
    environ: dict[str, str] = {}
    publish(config, environ)
    assert received(environ) == config
    # expanded once, in the main process: a worker does not need the variable
    assert '"api_key":"sk-1"' in environ[HANDOFF_VAR]


def test_nothing_published_means_none() -> None:
    assert received({}) is None
