"""The callers', keys' and tenants' rules: which cells a request charges, and for how much."""

from __future__ import annotations

from relay.config import parse_config
from relay.exchange import Endpoint, Exchange, Limits, Principal
from relay.limits.rule import Ask, Meter
from relay.limits.rules import CallerRule, PrincipalRule, caller_of, limit_rules

ASK = Ask(120, 0.5)


def exchange(principal: Principal | None = None, client: str = "10.1.2.3:5555") -> Exchange:
    ex = Exchange("r", Endpoint.CHAT, b"", {}, client=client)
    if principal is not None:
        ex.principal = principal
    return ex


def test_a_caller_is_its_key_its_credential_hashed_or_its_address() -> None:
    assert caller_of(exchange(Principal(key_id="key_1"))) == "kkey_1"
    by_credential = caller_of(exchange(Principal(client_authorization="Bearer sk-secret")))
    assert by_credential.startswith("h") and "secret" not in by_credential
    other = caller_of(exchange(Principal(client_authorization="Bearer sk-other")))
    assert other != by_credential
    assert caller_of(exchange()) == "a10.1.2.3"
    assert caller_of(exchange(client="[::1]:80")) == "a[::1]"
    # Under auth.mode none a credential is not who calls: the address is.
    none = exchange(Principal(client_authorization="Bearer x"))
    assert caller_of(none, by_credential=False) == "a10.1.2.3"


def test_caller_rule_per_caller_or_global() -> None:
    [charge] = CallerRule(0.2, 1).charges(exchange(), ASK)
    assert charge.charge.key == "c:a10.1.2.3:rps" and charge.meter is Meter.REQUESTS
    limit = charge.charge.limit
    assert (limit.rate, limit.period_s, limit.burst, charge.charge.cost) == (0.2, 1.0, 1, 1.0)
    [shared] = CallerRule(5, 10, "global").charges(exchange(), ASK)
    assert shared.charge.key == "g:rps" and shared.scope == "global"


def test_a_key_and_its_tenant_both_apply() -> None:
    principal = Principal(
        key_id="key_1",
        tenant_id="ten_1",
        key_limits=Limits(rate_limit_rpm=10),
        tenant_limits=Limits(rate_limit_rpm=100, tokens_per_minute=5000),
    )
    charges = PrincipalRule().charges(exchange(principal), ASK)
    assert [(m.charge.key, m.meter, m.scope, m.charge.cost) for m in charges] == [
        ("k:key_1:rpm", Meter.REQUESTS, "key", 1.0),
        ("t:ten_1:rpm", Meter.REQUESTS, "tenant", 1.0),
        ("t:ten_1:tpm", Meter.TOKENS, "tenant", 120),
    ]
    rpm = charges[0].charge.limit
    assert (rpm.rate, rpm.period_s, rpm.burst) == (10, 60.0, 10)  # burst: the minute's amount


def test_the_default_tpm_is_for_tenants_without_their_own() -> None:
    rule = PrincipalRule(default_tpm=50)
    named = Principal(tenant="team-a")  # auth.mode none: a tenant named by metadata only
    [charge] = rule.charges(exchange(named), ASK)
    assert charge.charge.key == "t:default/team-a:tpm" and charge.charge.limit.burst == 50
    own = Principal(tenant_id="ten_1", tenant_limits=Limits(tokens_per_minute=900))
    [charge] = rule.charges(exchange(own), ASK)
    assert charge.charge.limit.burst == 900
    assert PrincipalRule().charges(exchange(Principal()), ASK) == ()


def test_rules_listed_only_when_a_limit_may_apply() -> None:
    plain = parse_config("providers: {e: {kind: echo}}\n", "t")
    assert limit_rules(plain, "passthrough") == []
    assert [type(r).__name__ for r in limit_rules(plain, "keys")] == ["PrincipalRule"]
    on = parse_config(
        "providers: {e: {kind: echo}}\nratelimit: {enabled: true}\nlimits: {tokens_per_minute: 9}",
        "t",
    )
    assert [type(r).__name__ for r in limit_rules(on, "passthrough")] == [
        "CallerRule",
        "PrincipalRule",
    ]
