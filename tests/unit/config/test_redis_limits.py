"""The ``redis`` and ``limits`` sections: defaults, both forms, the environment, problems."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_config

ECHO = "providers: {e: {kind: echo}}\nmodels: {m: {provider: e}}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t.yaml", {})
    return info.value.problems


def test_defaults() -> None:
    config = parse_config(ECHO, "t", {})
    assert config.redis.timeout_ms == 50
    assert config.limits.on_redis_failure == "local"
    assert config.limits.replicas == 1


def test_full_and_simple_forms_take_both_sections() -> None:
    sections = (
        "redis: {enabled: true, address: 'redis://:pw@cache:6380/2', timeout_ms: 20}\n"
        "limits: {on_redis_failure: closed, replicas: 3}\n"
    )
    for text in (ECHO, "proxy: {target: 'http://h'}\n"):
        config = parse_config(text + sections, "t", {})
        assert config.redis.address == "redis://:pw@cache:6380/2"
        assert config.redis.timeout_ms == 20
        assert config.limits.on_redis_failure == "closed"
        assert config.limits.replicas == 3


def test_the_environment_names_redis() -> None:
    env = {"REDIS_ADDRESS": "rediss://cache.internal:6380", "REDIS_PASSWORD": "pw"}
    config = parse_config(ECHO, "t", env)
    assert config.redis.address == "rediss://cache.internal:6380"
    assert config.redis.password == "pw"


def test_problems_by_path() -> None:
    assert problems(ECHO + "limits: {on_redis_failure: ignore}") == [
        "limits.on_redis_failure: expected one of 'local', 'open', 'closed', got 'ignore'",
    ]
    text = ECHO + ("redis: {address: 'http://cache:6379', timeout_ms: 0}\nlimits: {replicas: 0}\n")
    assert problems(text) == [
        "redis.address: expected HOST:PORT or a redis://, rediss://, unix:// URL, got "
        "'http://cache:6379'",
        "redis.timeout_ms: expected more than 0, got 0.0",
        "limits.replicas: expected at least 1, got 0",
    ]
