"""Signed session cookies and CSRF tokens (relay.ui.session)."""

from __future__ import annotations

import time

import pytest

from relay.admin.access import Actor
from relay.ui.session import Session, SessionCodec

SECRET = b"0123456789abcdef0123456789abcdef"
ALICE = Actor("user:usr_1", "user", "acme", "usr_1")


def test_issue_and_read_round_trip() -> None:
    codec = SessionCodec(SECRET, lifetime_s=60)
    session, cookie = codec.issue(ALICE, via="oidc")
    read = codec.read(cookie)
    assert read == session
    assert read is not None and read.actor == ALICE and read.via == "oidc"
    assert session.expires_at == pytest.approx(time.time() + 60, abs=5)


def test_another_secret_or_a_changed_payload_is_refused() -> None:
    codec = SessionCodec(SECRET)
    _, cookie = codec.issue(ALICE)
    assert SessionCodec(b"another secret of 16+ bytes").read(cookie) is None
    payload, signature = cookie.rsplit(".", 1)
    admin = SessionCodec(SECRET).issue(Actor("master", "admin"))[1].rsplit(".", 1)[0]
    assert codec.read(f"{admin}.{signature}") is None  # a payload under another's signature
    assert codec.read(payload[:-2] + "AA." + signature) is None


@pytest.mark.parametrize("cookie", [None, "", "nodot", ".", "a.b", "\u00e9.\u00e9", "x" * 5000])
def test_malformed_cookies_are_none(cookie: str | None) -> None:
    assert SessionCodec(SECRET).read(cookie) is None


def test_expired_session_is_refused() -> None:
    codec = SessionCodec(SECRET, lifetime_s=-1)
    session, cookie = codec.issue(ALICE)
    assert session.expired
    assert codec.read(cookie) is None


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SessionCodec(b"short")


def test_csrf_token_is_bound_to_the_session() -> None:
    codec = SessionCodec(SECRET)
    one, _ = codec.issue(ALICE)
    two, _ = codec.issue(ALICE)
    token = codec.csrf_token(one)
    assert codec.csrf_ok(one, token)
    assert not codec.csrf_ok(two, token)
    assert not codec.csrf_ok(one, None)
    assert not codec.csrf_ok(one, "")
    assert not codec.csrf_ok(one, token[:-1] + ("A" if token[-1] != "A" else "B"))
    # Another secret derives other tokens for the same session id.
    other = SessionCodec(b"another secret of 16+ bytes")
    assert not other.csrf_ok(Session(ALICE, one.expires_at, one.sid), token)


def test_non_ascii_csrf_token_is_refused_not_raised() -> None:
    codec = SessionCodec(SECRET)
    session, _ = codec.issue(ALICE)
    assert not codec.csrf_ok(session, "\u00e9t\u00e9")
