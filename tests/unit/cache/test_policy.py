"""The cache's config, what is cacheable and the key (``relay.cache.policy``)."""

from __future__ import annotations

import pytest

from relay.cache.policy import Policy
from relay.config.load import ConfigError
from tests.unit.cache.cases import (
    BODY,
    CONFIG,
    config,
    exchange,
)


def test_off_in_yaml_is_the_mode_off_and_models_override() -> None:
    policy = Policy(config())
    assert policy.of("shut").mode == "off"
    assert (policy.of("open").mode, policy.of("open").ttl_s) == ("all", 5)
    assert policy.of("unlisted").mode == "deterministic"
    assert policy.enabled


def test_cache_problems_are_reported() -> None:
    bad = CONFIG.replace(
        "cache: {mode: deterministic, ignore_fields: [seed_note]}",
        "cache: {ttl_s: 0, ignore_fields: [messages], mode: sometimes}",
    )
    with pytest.raises(ConfigError) as caught:
        config(bad)
    problems = "\n".join(caught.value.problems)
    assert "cache.ttl_s: expected more than 0" in problems
    assert "cache.ignore_fields[0]: 'messages' changes the answer" in problems
    assert "cache.mode: expected one of 'off', 'deterministic', 'all'" in problems


def test_the_simple_form_with_redis_caches_deterministic_answers() -> None:
    simple = config("proxy: {target: https://api.openai.com}\nredis: {enabled: true}\n")
    assert simple.cache.mode == "deterministic"
    plain = config("proxy: {target: https://api.openai.com}\n")
    assert plain.cache.mode == "off"


def test_what_is_cacheable_in_deterministic_mode() -> None:
    policy = Policy(config())
    cases = [
        ({**BODY}, True),
        ({**BODY, "temperature": 0.5}, False),
        ({**BODY, "temperature": 0.5, "seed": 3}, True),
        ({**BODY, "n": 2}, False),
        ({**BODY, "model": "local", "temperature": 1}, True),
        ({**BODY, "model": "open", "temperature": 1}, True),
    ]
    for body, expected in cases:
        ex = exchange(body)
        assert policy.cacheable(ex, policy.of(ex.model)) is expected, body


def test_the_key_ignores_what_does_not_change_the_answer() -> None:
    policy = Policy(config())
    base = policy.key(exchange(BODY))
    assert policy.key(exchange({**BODY, "user": "u", "stream": True, "seed_note": "x"})) == base
    reordered = {"temperature": 0, "messages": BODY["messages"], "model": "m"}
    assert policy.key(exchange(reordered)) == base  # canonical JSON: keys sorted
    assert policy.key(exchange({**BODY, "max_tokens": 5})) != base
    assert policy.key(exchange(BODY, tenant="other")) != base
    assert policy.key(exchange(BODY, auth="Bearer a")) != policy.key(
        exchange(BODY, auth="Bearer b")
    )


def test_shared_tenants_share_a_key_but_never_across_credentials() -> None:
    policy = Policy(config(CONFIG.replace("ignore_fields: [seed_note]", "shared: true")))
    assert policy.key(exchange(BODY, tenant="a")) == policy.key(exchange(BODY, tenant="b"))
    assert policy.key(exchange(BODY, auth="x")) != policy.key(exchange(BODY, auth="y"))
