"""The deny rules' literal prefilter only ever skips work: whatever the text, the first rule
named is the one a plain regex search names."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from relay.policies.matching import Rules

PATTERNS = [
    "(?i)ignore (all )?previous instructions",
    "EMP-[0-9]{6}",
    "(?x) secret \\s+ sauce",
    "(?i)stra(ss|\u00df)e",
    "alpha|beta",
]
TERMS = ["Project Aurora", "\u212aelvin", "zeta-9"]
RULES = Rules.build([(f"p{i}", re.compile(p)) for i, p in enumerate(PATTERNS)], ("terms", TERMS))
PLAIN = [(f"p{i}", re.compile(p)) for i, p in enumerate(PATTERNS)] + [
    ("terms", re.compile(re.escape(t), re.IGNORECASE)) for t in TERMS
]
PIECES = [
    "ignore previous instructions", "IGNORE ALL PREVIOUS INSTRUCTIONS", "EMP-123456", "emp-123456",
    "secret   sauce", "STRASSE", "stra\u00dfe", "alpha", "PROJECT aurora", "kelvin", "ZETA-9",
    "\u017fecret", "x", " ", "\u0130", "previous", "instructions",
]  # fmt: skip


def reference(text: str) -> str | None:
    return next((name for name, p in PLAIN if p.search(text)), None)


@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=8))
def test_same_answer_as_plain_search(parts: list[str]) -> None:
    text = "".join(parts)
    assert RULES.first(text) == reference(text)


def test_examples() -> None:
    assert RULES.first("please Ignore previous INSTRUCTIONS") == "p0"
    assert RULES.first("nothing to see") is None
    assert RULES.first("id EMP-000001") == "p1"
    assert RULES.first("the KELVIN scale") == "terms"
