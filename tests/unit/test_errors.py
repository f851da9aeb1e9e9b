"""The error tree and secret scrubbing."""

from __future__ import annotations

from relay.errors import InvalidRequest, ModelNotFound, UpstreamStatusError, scrub_secrets


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
