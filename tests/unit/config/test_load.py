"""Config loading: both forms, env references, overrides, and every problem listed by path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from relay.config import ConfigError, load_config, parse_config
from relay.config.model import ServerConfig

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
ECHO = "providers: {e: {kind: echo}}\nmodels: {m: {provider: e}}\n"


def problems(
    text: str, env: Mapping[str, str] | None = None, flags: Mapping[str, object] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t.yaml", env or {}, flags)
    return info.value.problems


def test_embedded_default_loads_without_env_or_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
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
    assert problems(FULL) == [
        "providers.openai.api_key: environment variable OPENAI_KEY is not set"
    ]


def test_env_default_is_used_when_unset_or_empty() -> None:
    text = (
        ECHO
        + 'providers: {e: {kind: echo}, p: {kind: openai, base_url: "${URL:-http://localhost:1/v1}"}}'
    )
    text = text.replace("providers: {e: {kind: echo}}\n", "")
    assert parse_config(text, "t", {}).providers["p"].base_url == "http://localhost:1/v1"
    assert parse_config(text, "t", {"URL": ""}).providers["p"].base_url == "http://localhost:1/v1"
    assert parse_config(text, "t", {"URL": "http://x/v1"}).providers["p"].base_url == "http://x/v1"


def test_env_reference_cannot_change_yaml_structure() -> None:
    text = ECHO.replace("{kind: echo}", '{kind: echo, api_key: "${K}"}')
    config = parse_config(text, "t", {"K": "a: b\n- [c]"})
    assert config.providers["e"].api_key == "a: b\n- [c]"


def test_every_server_problem_at_once() -> None:
    # The example: three mistakes, three lines, not the first one only.
    found = problems(
        ECHO + "server: {prot: 8080, workers: two, max_body_bytes: -5, max_upstream_body_bytes: 9}"
    )
    known = ", ".join(sorted(ServerConfig.__struct_fields__))
    assert found == [
        f"server.prot: unknown field (known: {known})",
        "server.workers: expected an integer, got 'two'",
        "server.max_body_bytes: expected at least 1024, got -5",
        "server.max_upstream_body_bytes: expected at least 1024, got 9",
    ]


def test_body_timeout_must_be_positive() -> None:
    assert problems(ECHO + "server: {body_timeout_s: 0}") == [
        "server.body_timeout_s: expected more than 0 seconds, got 0.0"
    ]
    assert parse_config(ECHO, "t", {}).server.body_timeout_s == 30.0


def test_what_serve_would_trip_over_is_refused() -> None:
    assert problems(ECHO + "server: {log_level: loud, host: not a host}") == [
        "server.host: expected an IP address to listen on (127.0.0.1, 0.0.0.0, ::1, ::), got 'not a host'",
        "server.log_level: unknown level 'loud' (known: critical, debug, error, info, warning)",
    ]


def test_localhost_and_log_level_case_are_accepted() -> None:
    config = parse_config(ECHO + "server: {host: localhost, log_level: DEBUG}", "t", {})
    assert (config.server.host, config.server.log_level) == ("127.0.0.1", "debug")


def test_a_typo_in_a_provider_is_reported_once_not_on_every_model() -> None:
    text = """
providers: {openai: {kind: openai, base_url: "https://x/v1", api_kye: sk-1}}
models: {a: {provider: openai}, b: {provider: openai}}
"""
    assert problems(text) == [
        "providers.openai.api_kye: unknown field (known: anthropic_version, api_key, api_version, "
        "aws_access_key_id, aws_secret_access_key, aws_session_token, base_url, bearer_token, "
        "chunk_delay_ms, endpoint_url, forward_client_auth, headers, kind, max_tokens_default, "
        "native_responses, region, settings, timeouts)"
    ]


def test_a_provider_missing_its_kind_is_not_blamed_on_its_models() -> None:
    text = "providers: {p: {base_url: 'http://h/v1'}}\nmodels: {a: {provider: p}}"
    assert problems(text) == ["providers.p.kind: required"]


def test_names_and_ranges_by_path() -> None:
    text = """
providers:
  openai: {kind: openai, base_url: "ftp://x"}
  weird: {kind: nope}
  slow: {kind: echo, chunk_delay_ms: -1, timeouts: {read_s: 0}}
models:
  gpt-4o: {targets: [{provider: opnai}]}
  short: {provider: opnai}
  cheap: {provider: openai, pricing: {input: -1}}
  typo: {provder: openai}
  enc: {provider: openai, encoding: p50k}
default_provider: nobody
redis: {db: -1, address: "redis"}
ratelimit: {requests_per_second: 0, burst: 0}
"""
    assert problems(text) == [
        "models.typo.provder: unknown field (known: cache, content_policy_fallbacks, context_window_fallbacks, deterministic, drop_unsupported_params, encoding, fallbacks, limits, model, owned_by, policies, pricing, provider, retries, strategy, targets, timeouts)",
        "providers.openai.base_url: expected an http(s) URL, got 'ftp://x'",
        "providers.weird.kind: unknown kind 'nope' (known: anthropic, azure, bedrock, echo, mistral, ollama, openai, vllm)",
        "providers.slow.timeouts.read_s: expected more than 0 seconds, got 0.0",
        "providers.slow.chunk_delay_ms: expected 0 or more, got -1.0",
        "models.gpt-4o.targets[0].provider: unknown provider 'opnai' (known: openai, slow, weird)",
        "models.short.provider: unknown provider 'opnai' (known: openai, slow, weird)",
        "models.cheap.pricing.input: expected a price of 0 or more, got -1.0",
        "models.typo: needs `provider` or at least one entry in `targets`",
        "models.enc.encoding: unknown encoding 'p50k' (known: cl100k_base, o200k_base)",
        "default_provider: unknown provider 'nobody' (known: openai, slow, weird)",
        "redis.address: expected HOST:PORT, got 'redis'",
        "redis.db: expected a database number of 0 or more, got -1",
        "ratelimit.requests_per_second: expected more than 0, got 0.0",
        "ratelimit.burst: expected at least 1, got 0",
    ]


def test_wrong_types_report_the_nested_path_and_hide_secrets() -> None:
    text = ECHO.replace("{kind: echo}", "{kind: echo, api_key: 12345, timeouts: {read_s: fast}}")
    assert problems(text) == [
        "providers.e.api_key: expected a string or null, got int",
        "providers.e.timeouts.read_s: expected a number, got 'fast'",
    ]


def test_an_empty_file_is_refused() -> None:
    assert problems("") == ["the file is empty (or only comments): there is nothing to serve"]
    assert problems("# nothing here\n") == problems("")


def test_duplicate_keys_are_reported_not_silently_overwritten() -> None:
    text = "server:\n  port: 8080\n  port: 9090\n" + ECHO + "models: {n: {provider: e}}\n"
    assert problems(text) == [
        "server.port: duplicate key (lines 2 and 3); YAML would keep only the last",
        "models: duplicate key (lines 5 and 6); YAML would keep only the last",
    ]


def test_merge_keys_are_not_duplicates() -> None:
    text = "base: &b {kind: echo}\n"
    config_text = (
        "providers: {e: {<<: {kind: echo}, chunk_delay_ms: 1}}\nmodels: {m: {provider: e}}\n"
    )
    assert parse_config(config_text, "t", {}).providers["e"].chunk_delay_ms == 1
    assert problems(text + ECHO)[0].startswith("base: unknown section")


def test_invalid_yaml_says_where() -> None:
    assert problems("server: {port: 1\nmodels: [")[0].startswith("line ")


def test_a_character_yaml_refuses_is_one_problem_that_says_where() -> None:
    # PyYAML's own message spans two lines and counts characters, not lines.
    assert problems("server: {port: 1}\nmodels: {m\x01: {}}\n") == [
        "line 2, column 11: invalid YAML: character #x0001: special characters are not allowed"
    ]


def test_unknown_top_level_section() -> None:
    assert problems(ECHO + "servr: {}")[0].startswith(
        "servr: unknown section (known: auth, cache, database, default_provider"
    )


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


def test_simple_form_becomes_one_passthrough_provider_priced_per_1k() -> None:
    config = parse_config(SIMPLE, "simple.yaml", {})
    assert config.server.port == 8081
    provider = config.providers["upstream"]
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.forward_client_auth is True
    assert config.default_provider == "upstream"
    # the simple form's prices are per 1K tokens; the full form's (what it becomes) per 1M
    assert config.models["gpt-4o"].pricing.input == pytest.approx(5.0)
    assert config.models["gpt-4o-mini"].pricing.output == pytest.approx(0.6)
    assert config.ratelimit.requests_per_second == 0.2


def test_simple_form_problems() -> None:
    found = problems("proxy: {target: nowhere}\nmodels: {a: cheap, b: -1}")
    assert found == [
        "proxy.target: expected an http(s) URL, got 'nowhere'",
        "models.a: expected a price in USD per 1K tokens, got 'cheap'",
        "models.b: expected a price of 0 or more, got -1",
    ]


def test_environment_overrides() -> None:
    env = {"SERVER_PORT": "9999", "REDIS_ADDRESS": "redis:6380", "REDIS_PASSWORD": "pw"}
    config = parse_config(SIMPLE, "s", env)
    assert config.server.port == 9999
    assert config.redis.address == "redis:6380"
    assert config.redis.password == "pw"


def test_server_port_with_a_host_overrides_the_files_host() -> None:
    text = ECHO + "server: {host: 127.0.0.1, port: 8080}"
    config = parse_config(text, "t", {"SERVER_PORT": "0.0.0.0:9001"})
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9001)
    config = parse_config(text, "t", {"SERVER_PORT": "[::1]:9002"})
    assert (config.server.host, config.server.port) == ("::1", 9002)


def test_a_bad_override_names_the_variable_or_flag() -> None:
    assert problems(ECHO, {"SERVER_PORT": "eighty"}) == [
        'server.port (from SERVER_PORT): expected a port number, ":PORT" or "HOST:PORT", got \'eighty\''
    ]
    assert problems(ECHO, {"SERVER_PORT": "70000"}) == [
        "server.port (from SERVER_PORT): expected 1-65535, got 70000"
    ]
    assert problems(ECHO, {"RELAY_LOG_LEVEL": "loud"}) == [
        "server.log_level (from RELAY_LOG_LEVEL): unknown level 'loud' (known: critical, debug, error, info, warning)"
    ]
    assert problems(ECHO, {}, {"--port": 0, "--workers": 0}) == [
        "server.port (from --port): expected 1-65535, got 0",
        "server.workers (from --workers): expected at least 1, got 0",
    ]


def test_flags_win_over_the_environment_and_the_file() -> None:
    text = ECHO + "server: {port: 1000, log_level: info}"
    env = {"SERVER_PORT": "2000", "RELAY_LOG_LEVEL": "warning"}
    config = parse_config(text, "t", env, {"--port": 3000, "--log-level": "debug"})
    assert (config.server.port, config.server.log_level) == (3000, "debug")
    assert parse_config(text, "t", env).server.port == 2000


def test_a_port_naming_another_host_than_server_host_is_a_problem() -> None:
    assert problems(ECHO + "server: {host: 127.0.0.1, port: '0.0.0.0:8080'}") == [
        "server.port: names host 0.0.0.0 but server.host is 127.0.0.1"
    ]


def test_relay_config_env_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(ECHO)
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


def test_colon_port_means_every_interface_unless_a_host_is_named() -> None:
    # As a Go user (and a container) reads ":8080".
    def address(
        text: str, env: dict[str, str] | None = None, flags: dict[str, object] | None = None
    ) -> tuple[str, int]:
        server = parse_config(text, "t", env or {}, flags).server
        return server.host, server.port

    assert address(ECHO + "server: {port: ':8080'}") == ("0.0.0.0", 8080)
    assert address(SIMPLE) == ("0.0.0.0", 8081)  # the simple form's own example
    assert address(ECHO + "server: {host: 127.0.0.1, port: ':8080'}") == ("127.0.0.1", 8080)
    assert address(ECHO + "server: {port: ':8080'}", flags={"--host": "::1"}) == ("::1", 8080)
    assert address(ECHO + "server: {port: '8080'}") == ("127.0.0.1", 8080)
    assert address(ECHO, {"SERVER_PORT": ":9000"}) == ("0.0.0.0", 9000)
    assert address(ECHO + "server: {host: 127.0.0.1}", {"SERVER_PORT": ":9000"}) == (
        "127.0.0.1",
        9000,
    )
    assert address(ECHO, {"SERVER_PORT": ":9000"}, {"--host": "127.0.0.1"}) == ("127.0.0.1", 9000)
    # overriding only the port keeps the interfaces the file chose
    assert address(ECHO + "server: {port: ':8080'}", flags={"--port": 9001}) == ("0.0.0.0", 9001)
    assert address(ECHO + "server: {port: ':8080'}", {"SERVER_PORT": "9002"}) == ("0.0.0.0", 9002)
