"""Signed session cookies of the dashboard, and the CSRF token bound to each session.

A session is who signed in (an ``Actor``: role and organisation, from a key or from an OIDC
token's claims), when it expires, and a random id. The cookie carries it in the clear,
signed with HMAC-SHA256 under the gateway's session secret, so any worker (and any replica
with the same secret) can verify it without shared storage. Logout and expiry end it; the
CSRF token of a form is derived from the session id, so a form posted from another site (no
cookie, or another session) is refused.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from relay.admin.access import Actor

S = TypeVar("S", bound=msgspec.Struct)

__all__ = ["COOKIE", "Session", "SessionCodec"]

COOKIE = "relay_session"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user of the dashboard."""

    actor: Actor
    expires_at: float
    # Random per sign-in: the CSRF tokens of this session are derived from it.
    sid: str
    # How the user signed in: "key" or "oidc".
    via: str = "key"

    @property
    def expired(self) -> bool:
        """Past its expiry (a session is never extended silently)."""
        return time.time() >= self.expires_at


class _Wire(msgspec.Struct, array_like=True, frozen=True):
    name: str
    role: str
    organization: str | None
    user_id: str | None
    expires_at: float
    sid: str
    via: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _seal(value: msgspec.Struct, sign: Callable[[bytes], str]) -> str:
    """``value`` as ``<payload>.<signature>``: its msgspec JSON in unpadded base64url, signed."""
    payload = _b64(msgspec.json.encode(value))
    return f"{payload}.{sign(payload.encode('ascii'))}"


def _unseal(cookie: str | None, sign: Callable[[bytes], str], kind: type[S]) -> S | None:
    """The value :func:`_seal` made; None when absent, forged or malformed."""
    if not cookie or "." not in cookie:
        return None
    payload, _, signature = cookie.rpartition(".")
    # Compared as bytes: a header may carry any character, and compare_digest refuses
    # non-ASCII str.
    expected = sign(payload.encode("ascii", "replace")).encode("ascii")
    if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
        return None
    try:
        return msgspec.json.decode(_unb64(payload), type=kind)
    except (ValueError, msgspec.DecodeError):
        return None


class SessionCodec:
    """Issue and verify session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes, lifetime_s: float = 8 * 3600) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._key = hashlib.sha256(b"relay-ui-session\x00" + secret).digest()
        self.lifetime_s = lifetime_s

    def issue(self, actor: Actor, via: str = "key") -> tuple[Session, str]:
        """A new session for ``actor`` and the cookie value that carries it."""
        session = Session(actor, time.time() + self.lifetime_s, secrets.token_urlsafe(16), via)
        wire = _Wire(
            actor.name,
            actor.role,
            actor.organization,
            actor.user_id,
            session.expires_at,
            session.sid,
            via,
        )
        return session, _seal(wire, self._sign)

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries; None when absent, forged, malformed or expired."""
        wire = _unseal(cookie, self._sign, _Wire)
        if wire is None:
            return None
        actor = Actor(wire.name, wire.role, wire.organization, wire.user_id)
        session = Session(actor, wire.expires_at, wire.sid, wire.via)
        return None if session.expired else session

    def csrf_token(self, session: Session) -> str:
        """The token every form of this session carries."""
        return self._sign(b"csrf\x00" + session.sid.encode("ascii"))

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        """Whether a posted form's token belongs to this session."""
        expected = self.csrf_token(session).encode("ascii")
        return bool(token) and hmac.compare_digest(
            (token or "").encode("utf-8", "replace"), expected
        )

    def mac(self, purpose: str, data: bytes) -> str:
        """A signature of ``data`` under the session key for another short-lived value of the
        dashboard (the OIDC sign-in's state cookie), kept apart from session cookies and CSRF
        tokens by ``purpose`` so that one can never pass for the other."""
        return self._sign(b"mac\x00" + purpose.encode("ascii") + b"\x00" + data)

    def seal(self, purpose: str, value: msgspec.Struct) -> str:
        """``value`` signed (:meth:`mac` under ``purpose``) for a cookie of its own."""
        return _seal(value, functools.partial(self.mac, purpose))

    def unseal(self, purpose: str, cookie: str | None, kind: type[S]) -> S | None:
        """The value :meth:`seal` put in ``cookie``; None when absent, forged or malformed."""
        return _unseal(cookie, functools.partial(self.mac, purpose), kind)

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())
