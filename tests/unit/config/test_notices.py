"""Start-up summary and warnings: what is served, to whom, and what is not enforced."""

from __future__ import annotations

from relay.auth.mode import choose_mode, with_mode
from relay.config import parse_config
from relay.config.notices import summary, warnings

KEYED = "providers: {o: {kind: openai, base_url: 'http://h/v1', api_key: sk-1}}\nmodels: {m: {provider: o}}\n"


def test_summary_of_the_simple_form() -> None:
    config = parse_config(
        "proxy: {target: 'http://h'}\nmodels: {a: 0.001}\nserver: {host: '::1'}\n"
        "database: {url: 'sqlite:////var/lib/relay/relay.db'}",
        "s",
        {},
    )
    # serve states the mode it decided (with no database keys: passthrough).
    assert summary(with_mode(config, choose_mode(config, 0))) == [
        "models: a",
        "unlisted models go to provider 'upstream'",
        "auth: passthrough (no client authentication by Relay; each caller's Authorization is "
        "forwarded to: upstream)",
        "ledger: SQLite file /var/lib/relay/relay.db, rows kept 30 days",
        "serving http://[::1]:8080/v1 (listening on ::1, loopback: this machine only)",
    ]


def test_a_key_on_a_public_address_is_a_warning_not_on_loopback() -> None:
    assert warnings(parse_config(KEYED, "t", {})) == []
    assert warnings(parse_config(KEYED + "server: {host: 0.0.0.0}", "t", {})) == [
        "provider key(s) of o are served on 0.0.0.0 with no client authentication: anyone who "
        "can reach this port spends them"
    ]
    no_key = KEYED.replace("api_key: sk-1", "api_key: ''")
    assert warnings(parse_config(no_key + "server: {host: 0.0.0.0}", "t", {})) == []


def test_no_models_and_sections_not_enforced() -> None:
    text = "providers: {e: {kind: echo}}\nratelimit: {enabled: true}\nredis: {enabled: true}"
    assert warnings(parse_config(text, "t", {})) == [
        "no models are configured and no default_provider: every request will get a 404",
    ]


def test_the_serving_line_says_who_can_connect() -> None:
    def line(server: str) -> str:
        return summary(parse_config(KEYED + server, "t", {}))[-1]

    assert (
        line("")
        == "serving http://127.0.0.1:8080/v1 (listening on 127.0.0.1, loopback: this machine only)"
    )
    assert (
        line("server: {port: ':9000'}")
        == "serving http://0.0.0.0:9000/v1 (listening on 0.0.0.0, every IPv4 interface)"
    )
    assert (
        line("server: {host: '::'}")
        == "serving http://[::]:8080/v1 (listening on ::, every interface)"
    )
    assert (
        line("server: {host: 10.1.2.3}")
        == "serving http://10.1.2.3:8080/v1 (listening on 10.1.2.3)"
    )


def test_the_summary_says_what_the_cache_does() -> None:
    base = "providers: {p: {kind: echo}}\nmodels: {m: {provider: p, cache: {mode: all}}}\n"
    off = parse_config(base.replace("mode: all", "mode: off"), "t.yaml", env={})
    assert not any(line.startswith("cache:") for line in summary(off))
    on = parse_config(base + "cache: {ttl_s: 60}\n", "t.yaml", env={})
    assert "cache: off (m: all), in memory (256 MiB per worker), entries kept 60 s" in summary(on)
    redis = parse_config(
        base + "cache: {mode: deterministic}\nredis: {enabled: true}\n", "t", env={}
    )
    assert any(
        "cache: deterministic (m: all), in Redis at 127.0.0.1:6379" in s for s in summary(redis)
    )
