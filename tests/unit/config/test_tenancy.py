"""The auth and database sections: defaults, environment overrides, problems by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, parse_config


def test_defaults_need_no_setup() -> None:
    config = parse_config("providers: {echo: {kind: echo}}", "t", {})
    # Not set: decided at start (keys with an admin key or active keys, else passthrough).
    assert config.auth.mode is None and config.auth.admin_key is None
    assert config.database.url == "sqlite:///relay.db" and config.database.ledger.enabled


def test_environment_overrides() -> None:
    env = {
        "DATABASE_URL": "postgresql://relay@db:5432/relay",
        "RELAY_ADMIN_KEY": "a-long-enough-master-key",
        "RELAY_AUTH_MODE": "keys",
    }
    config = parse_config("database: {url: 'sqlite:///x.db'}", "t", env)
    assert config.database.url == env["DATABASE_URL"]
    assert (config.auth.mode, config.auth.admin_key) == ("keys", env["RELAY_ADMIN_KEY"])


def test_problems_are_reported_by_path() -> None:
    text = """
auth: {mode: tokens, admin_key: short, key_refresh_s: 5}
database: {url: 'mysql://u:secret@h/db', ledger: {queue_size: 0, flush_interval_s: 0}}
providers: {p: {kind: openai, base_url: 'http://x', forward_client_auth: true}}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, "t", {})
    problems = "\n".join(err.value.problems)
    assert any(p.startswith("auth.mode:") and "'tokens'" in p for p in err.value.problems)
    assert "secret" not in problems and "database.url: expected sqlite:///PATH" in problems
    assert "mysql://u:***@h/db" in problems
    assert (
        "database.ledger.queue_size" in problems and "database.ledger.flush_interval_s" in problems
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace("tokens", "keys"), "t", {})
    problems = "\n".join(err.value.problems)
    assert "auth.key_refresh_s" in problems and "auth.admin_key" in problems
    assert "providers.p.forward_client_auth" in problems


def test_start_up_says_which_auth_mode_is_on() -> None:
    from relay.config.notices import auth_mode, warnings

    base = "providers: {o: {kind: openai, base_url: 'http://x', api_key: sk-1}}\nserver: {host: 0.0.0.0}\n"
    keys = parse_config(base + "auth: {mode: keys}", "t", {})
    assert auth_mode(keys).startswith("keys (")
    assert not any("no client authentication" in w for w in warnings(keys))
    open_ = parse_config(base + "auth: {mode: none}", "t", {})
    assert auth_mode(open_).startswith("none (")
    assert any("no client authentication" in w for w in warnings(open_))


def test_database_url_none_turns_the_database_off_in_both_forms() -> None:
    from relay.config.notices import summary, warnings

    full = parse_config("providers: {e: {kind: echo}}\ndatabase: {url: none}", "t", {})
    simple = parse_config("proxy: {target: 'http://h'}\ndatabase: {url: none}", "s", {})
    for config in (full, simple):
        assert config.database.url == "none"
        assert (
            "ledger: off (database.url: none: no ledger, keys, admin API or stored responses)"
            in summary(config)
        )
    with_key = parse_config(
        "providers: {e: {kind: echo}}\ndatabase: {url: none}\nauth: {admin_key: a-long-enough-master-key}",
        "t",
        {},
    )
    assert any("the admin API needs a database" in w for w in warnings(with_key))
    with pytest.raises(ConfigError) as err:
        parse_config(
            "providers: {e: {kind: echo}}\ndatabase: {url: none}\nauth: {mode: keys}", "t", {}
        )
    assert any(p.startswith("auth.mode: keys are kept in the database") for p in err.value.problems)


def test_retention_days() -> None:
    assert parse_config("providers: {e: {kind: echo}}", "t", {}).database.retention_days == 30
    forever = parse_config(
        "providers: {e: {kind: echo}}\ndatabase: {retention_days: null}", "t", {}
    )
    assert forever.database.retention_days is None
    for bad in ("0", "-1"):
        with pytest.raises(ConfigError) as err:
            parse_config(
                f"providers: {{e: {{kind: echo}}}}\ndatabase: {{retention_days: {bad}}}", "t", {}
            )
        assert any(
            p.startswith("database.retention_days: expected a positive") for p in err.value.problems
        )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://relay:s3cret@db:5432/relay", "postgresql://relay:***@db:5432/relay"),
        ("postgresql://relay@db/relay", "postgresql://relay@db/relay"),
        ("postgres://u:p@ss/w@h/db", "postgres://u:***@h/db"),
        (
            "postgresql://h/db?user=u&password=s3cret&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
        ("postgresql://h/db?PASSWORD=s3cret", "postgresql://h/db?PASSWORD=***"),
    ],
)
def test_the_start_up_line_states_the_ledger_without_its_password(url: str, shown: str) -> None:
    from relay.config.notices import summary

    config = parse_config(f"providers: {{e: {{kind: echo}}}}\ndatabase: {{url: '{url}'}}", "t", {})
    assert f"ledger: PostgreSQL {shown}, rows kept 30 days" in summary(config)
    assert "s3cret" not in "".join(summary(config))


def test_the_start_up_line_states_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.config.notices import summary

    monkeypatch.chdir(tmp_path)
    config = parse_config("providers: {e: {kind: echo}}", "t", {})
    assert f"ledger: SQLite file {tmp_path}/relay.db, rows kept 30 days" in summary(config)
    off = parse_config(
        "providers: {e: {kind: echo}}\ndatabase: {ledger: {enabled: false}, retention_days: 7.5}",
        "t",
        {},
    )
    assert (
        f"ledger: off (database.ledger.enabled: false); database: SQLite file {tmp_path}/relay.db"
        in summary(off)
    )
    forever = parse_config(
        "providers: {e: {kind: echo}}\ndatabase: {url: 'sqlite:////x/y.db', retention_days: null}",
        "t",
        {},
    )
    assert "ledger: SQLite file /x/y.db, kept forever" in summary(forever)


def test_an_admin_key_without_a_mode_means_keys() -> None:
    """Unset, the mode is keys once an admin key is set: what start-up, the warnings and the
    checks say (a provider cannot forward the caller's key then)."""
    from relay.config.notices import auth_mode, warnings

    base = "providers: {o: {kind: openai, base_url: 'http://x', api_key: sk-1}}\nserver: {host: 0.0.0.0}\n"
    keyed = parse_config(base + "auth: {admin_key: a-long-enough-admin-key}", "t", {})
    assert auth_mode(keyed).startswith("keys (")
    assert not any("no client authentication" in w for w in warnings(keyed))
    unset = parse_config(base, "t", {})
    assert auth_mode(unset).startswith("not set (keys when the database holds active")
    forwarding = "providers: {p: {kind: openai, base_url: 'http://x', forward_client_auth: true}}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(forwarding + "auth: {admin_key: a-long-enough-admin-key}", "t", {})
    assert err.value.problems == [
        "providers.p.forward_client_auth: cannot forward the caller's key in auth.mode keys "
        "(the default with an admin key): callers present gateway keys; set the provider's "
        "api_key, or set auth.mode: passthrough"
    ]
    explicit = "auth: {mode: passthrough, admin_key: a-long-enough-admin-key}"
    assert parse_config(forwarding + explicit, "t", {}).auth.mode == "passthrough"
