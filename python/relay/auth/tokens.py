"""Gateway keys: ``gw-sk-`` and 256 random bits; stored as a SHA-256 and a visible prefix."""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_PREFIX = "gw-sk-"
# gw-sk- plus 8 characters of the random part: enough for people to tell keys apart,
# far too little to guess the rest (the remaining 35 characters carry ~208 bits).
VISIBLE_CHARS = len(KEY_PREFIX) + 8


_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    """A new key; shown once to its owner, never stored. 43 base62 characters: 256 bits,
    and no '-' or '_', so a double click selects the whole key."""
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(43))


def looks_like_key(key: str) -> bool:
    """Whether ``key`` has the shape :func:`new_key` gives (anything else cannot be stored)."""
    return (
        len(key) == len(KEY_PREFIX) + 43
        and key.startswith(KEY_PREFIX)
        and key[len(KEY_PREFIX) :].isascii()
        and key[len(KEY_PREFIX) :].isalnum()
    )


def hash_key(key: str) -> str:
    """The stored form of a key. A fast hash suffices: the key is random, not a password."""
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    """The part of a key shown in listings and recorded in the ledger."""
    return key[:VISIBLE_CHARS]


def new_id(kind: str) -> str:
    """A short random object id such as ``ten_5f2c9a1b7e3d4c60``."""
    return f"{kind}_{secrets.token_hex(8)}"
