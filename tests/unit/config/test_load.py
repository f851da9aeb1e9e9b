"""Config loading: both forms, env references, overrides, and every problem listed by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, load_config, parse_config

FULL = """
server: {port: 9000, max_body_bytes: 2048}
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_KEY}"}
  echo: {kind: echo}
models:
  gpt-4o:
    targets: [{provider: openai, model: gpt-4o-2024-08-06}]
    pricing: {input: 2.5, output: 10, cached: 1.25}
  local: {provider: echo}
"""


def test_embedded_default_loads_without_env_or_files() -> None:
    config = load_config(env={})
    assert config.source == "<embedded default>"
    assert config.providers["echo"].kind == "echo"
    assert "echo" in config.models
    assert config.server.port == 8080


def test_full_form_with_env_reference() -> None:
    config = parse_config(FULL, "t.yaml", {"OPENAI_KEY": "sk-abc"})
    assert config.providers["openai"].api_key == "sk-abc"
    assert config.models["gpt-4o"].targets[0].model == "gpt-4o-2024-08-06"
    assert config.models["gpt-4o"].pricing.cached == 1.25
    # the provider/model shorthand becomes one target
    assert config.models["local"].targets[0].provider == "echo"
    assert config.server.port == 9000


def test_missing_env_var_is_a_problem_with_its_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(FULL, "t.yaml", {})
    assert info.value.problems == [
        "providers.openai.api_key: environment variable OPENAI_KEY is not set"
    ]


def test_env_default_is_used_when_unset_or_empty() -> None:
    text = 'providers: {p: {kind: openai, base_url: "${URL:-http://localhost:1/v1}"}}'
    assert parse_config(text, "t", {}).providers["p"].base_url == "http://localhost:1/v1"
    assert parse_config(text, "t", {"URL": ""}).providers["p"].base_url == "http://localhost:1/v1"
    assert parse_config(text, "t", {"URL": "http://x/v1"}).providers["p"].base_url == "http://x/v1"


def test_env_reference_cannot_change_yaml_structure() -> None:
    text = 'providers: {p: {kind: openai, base_url: "http://h/v1", api_key: "${K}"}}'
    config = parse_config(text, "t", {"K": "a: b\n- [c]"})
    assert config.providers["p"].api_key == "a: b\n- [c]"


def test_every_problem_is_listed_by_path() -> None:
    text = """
server: {port: "not-a-port", workers: 0}
providers:
  openai: {kind: openai, base_url: "ftp://x"}
  weird: {kind: nope}
models:
  gpt-4o: {targets: [{provider: opnai}]}
  cheap: {provider: openai, pricing: {input: -1}}
  typo: {provder: openai}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml", {})
    problems = info.value.problems
    assert (
        "models.gpt-4o.targets[0].provider: unknown provider 'opnai' (known: openai, weird)"
        in problems
    )
    assert "providers.weird.kind: unknown kind 'nope' (known: openai, echo)" in problems
    assert "providers.openai.base_url: expected an http(s) URL, got 'ftp://x'" in problems
    assert "models.cheap.pricing.input: expected a non-negative price" in problems
    assert any(p.startswith("server.port:") for p in problems)
    assert any(p.startswith("models.typo") and "provder" in p for p in problems)
    assert "bad.yaml" in str(info.value)


def test_wrong_types_report_the_nested_path() -> None:
    text = "providers: {p: {kind: openai, base_url: 'http://h/v1', timeouts: {read_s: fast}}}"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t", {})
    assert info.value.problems[0].startswith("providers.p.timeouts.read_s: expected `float`")


def test_invalid_yaml_says_where() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("server: {port: 1\nmodels: [", "t", {})
    assert info.value.problems[0].startswith("line ")


def test_unknown_top_level_section() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("servr: {}", "t", {})
    assert info.value.problems[0].startswith("servr: unknown section")


SIMPLE = """
server:
  port: ":8081"
proxy:
  target: https://api.openai.com
ratelimit: {enabled: true, requests_per_second: 0.2, burst: 1}
redis: {enabled: false, address: "localhost:6379", password: "", db: 0}
models:
  gpt-4o: 0.005
  gpt-4o-mini: {input: 0.00015, output: 0.0006}
"""


def test_simple_form_becomes_one_passthrough_provider() -> None:
    config = parse_config(SIMPLE, "simple.yaml", {})
    assert config.server.port == 8081
    provider = config.providers["upstream"]
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.forward_client_auth is True
    assert config.default_provider == "upstream"
    assert config.models["gpt-4o"].pricing.input == pytest.approx(5.0)
    assert config.models["gpt-4o-mini"].pricing.output == pytest.approx(0.6)
    assert config.ratelimit.requests_per_second == 0.2


def test_simple_form_problems() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("proxy: {target: nowhere}\nmodels: {a: cheap}", "s", {})
    assert "proxy.target: expected an http(s) URL, got 'nowhere'" in info.value.problems
    assert "models.a: expected a price in USD per 1K tokens, got 'cheap'" in info.value.problems


def test_environment_overrides() -> None:
    env = {"SERVER_PORT": "9999", "REDIS_ADDRESS": "redis:6380", "REDIS_PASSWORD": "pw"}
    config = parse_config(SIMPLE, "s", env)
    assert config.server.port == 9999
    assert config.redis.address == "redis:6380"
    assert config.redis.password == "pw"


def test_relay_config_env_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("providers: {e: {kind: echo}}\nmodels: {m: {provider: e}}\n")
    config = load_config(env={"RELAY_CONFIG": str(path)})
    assert list(config.models) == ["m"]
    assert config.source == str(path)


def test_unreadable_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/relay.yaml", env={})
    assert "cannot read the file" in info.value.problems[0]


def test_shipped_example_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[3] / "configs"
    for path in sorted(root.glob("*.yaml")):
        load_config(path, env={"OPENAI_API_KEY": "sk-x"})
