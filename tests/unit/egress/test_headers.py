"""Which provider headers reach the client, under which name."""

from __future__ import annotations

from relay.egress.headers import passed_upstream_headers

ANTHROPIC = {
    "request-id": "req_011CUp",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-organization-id": "0b5a-org",
    "anthropic-workspace-id": "wrkspc_01",
    "content-type": "application/json",
}


def test_anthropic_request_id_is_passed_as_the_upstream_id() -> None:
    assert passed_upstream_headers(ANTHROPIC, caller_credential=False) == [
        ("x-upstream-request-id", "req_011CUp")
    ]


def test_anthropic_account_headers_only_with_the_callers_own_key() -> None:
    passed = dict(passed_upstream_headers(ANTHROPIC, caller_credential=True))
    assert passed == {
        "x-upstream-request-id": "req_011CUp",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-organization-id": "0b5a-org",
        "anthropic-workspace-id": "wrkspc_01",
    }
