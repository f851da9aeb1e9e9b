"""The error tree and secret scrubbing."""

from __future__ import annotations

from relay.errors import (
    InvalidRequest,
    ModelNotFound,
    UpstreamStatusError,
    scrub_account,
    scrub_secrets,
    without_account,
)


def test_statuses() -> None:
    assert InvalidRequest("x").status == 400
    assert ModelNotFound("x").status == 404


def test_keys_are_scrubbed_masked_or_not() -> None:
    text = "Incorrect API key provided: sk-proj-abc***wxyz. Also Bearer abcdef123456 and sk-ant-api03-XYZ"
    clean = scrub_secrets(text)
    assert "sk-proj" not in clean and "abcdef123456" not in clean and "sk-ant" not in clean
    assert clean.startswith("Incorrect API key provided: [redacted]")


def test_exact_configured_secret_is_scrubbed() -> None:
    assert scrub_secrets("token mysecretvalue leaked", "mysecretvalue") == "token [redacted] leaked"


def test_upstream_status_error_scrubs_its_message() -> None:
    err = UpstreamStatusError(401, "bad key sk-live-123456", error_type="invalid_request_error")
    assert (
        err.status == 401 and "sk-live" not in err.message and err.type == "invalid_request_error"
    )


def test_ordinary_words_are_not_mistaken_for_keys() -> None:
    text = "a task-specific risk-sk-free ask-me desk-lamp"
    assert scrub_secrets(text) == text


def test_account_ids_are_scrubbed_and_ordinary_words_kept() -> None:
    text = (
        "Rate limit reached in organization org-AbC123xyz456 on requests; project "
        "proj_Q1w2E3r4T5, proj-abcdef12; rate limit for your organization "
        "(3fa85f64-5717-4562-b3fc-2c963f66afa6) of 40,000 tokens"
    )
    assert scrub_account(text) == (
        "Rate limit reached in organization [redacted] on requests; project "
        "[redacted], [redacted]; rate limit for your organization ([redacted]) of 40,000 tokens"
    )
    words = "an org-wide proj-level org-chart for the organization's projects"
    assert scrub_account(words) == words


def test_without_account_rewrites_the_message_only_when_needed() -> None:
    err = without_account(UpstreamStatusError(429, "limit in organization org-AbC123xyz456"))
    assert err.message == str(err) == "limit in organization [redacted]" and err.status == 429
