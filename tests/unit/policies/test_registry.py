"""Building policies from the config: errors by path in check-config, and the chain each
request runs (global, then the model's, then the tenant's)."""

from __future__ import annotations

import textwrap

import pytest

from relay.config import ConfigError, parse_config
from relay.config.model import Config
from relay.policies.registry import build_policies

BASE = """
providers: {e: {kind: echo}}
models:
  m: {provider: e, policies: [b]}
  other: {provider: e}
"""


def config(extra: str) -> Config:
    return parse_config(BASE + textwrap.dedent(extra), "t.yaml", {})


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(extra)
    return info.value.problems


def test_errors_name_their_path() -> None:
    found = problems(
        """
        policies:
          a: {kind: rewrite, cap: {max_tokens: -1}, colour: red}
          b: {kind: guardrail, input_deny: ["(unclosed"]}
          c: {kind: nope}
          d: {kind: log_content, store: sometimes}
          e: {kind: rewrite, system_prefix: "Hi {user}"}
        middleware: [a, ghost]
        tenant_policies: {acme: [zzz]}
        """
    )
    text = "\n".join(found)
    assert "policies.a.colour: unknown setting of kind 'rewrite' 'colour'" in text
    assert "policies.b.input_deny[0]: invalid regular expression" in text
    assert "policies.c.kind: unknown policy kind 'nope' (known: guardrail, log_content" in text
    assert "policies.d.store: unknown value 'sometimes' (known: full, none, redacted)" in text
    assert "policies.e.system_prefix: unknown variable {user}" in text
    assert "middleware[1]: unknown policy 'ghost'" in text
    assert "tenant_policies.acme[0]: unknown policy 'zzz'" in text


def test_unknown_name_on_a_model() -> None:
    found = problems("policies: {a: {kind: rewrite}}\n")
    assert any(p.startswith("models.m.policies[0]: unknown policy 'b'") for p in found)


def test_cap_values_are_checked() -> None:
    found = problems(
        """
        policies:
          a: {kind: rewrite, cap: {max_tokens: -1}}
          b: {kind: rewrite}
        """
    )
    assert "policies.a.cap.max_tokens: expected a positive number, got -1" in found


def test_chain_order_global_model_tenant_each_once() -> None:
    cfg = config(
        """
        policies:
          a: {kind: rewrite}
          b: {kind: rewrite}
          c: {kind: rewrite}
          g: {kind: guardrail, output_deny: [x]}
        middleware: [a, g]
        tenant_policies: {acme: [c, a]}
        """
    )
    policies = build_policies(cfg)

    def names(model: str, tenant: str) -> list[str]:
        return [p.name for p in policies.chain(model, tenant).policies]

    assert names("m", "acme") == ["a", "g", "b", "c"]
    assert names("m", "default") == ["a", "g", "b"]
    assert names("other", "acme") == ["a", "g", "c"]
    assert names("unknown-model", "nobody") == ["a", "g"]
    chain = policies.chain("other", "default")
    assert len(chain.answer_hooks) == len(chain.stream_hooks) == 1 and not chain.taps


def test_no_policies_is_empty() -> None:
    plain = parse_config("providers: {e: {kind: echo}}\nmodels: {m: {provider: e}}\n", "t", {})
    assert build_policies(plain).empty
