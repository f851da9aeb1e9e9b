"""Deny rules matched fast: each regular expression with a literal prefilter.

Python's ``re`` scans a text position by position when a pattern ignores case (some 120 us for
4 KB, for one rule), but finds a case-sensitive literal with a fast substring search. So each
rule keeps the longest run of literal characters that every match must contain (from the
pattern's parse: top-level literals only, never inside an alternative or a repeat); on ASCII
text (case folding is then exact) a rule whose literal is absent cannot match and its regex is
not run. Text that is not ASCII, or a rule without such a literal, goes to the regex: the
prefilter only ever skips work, never a match.
"""

from __future__ import annotations

import re
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]

__all__ = ["Rule", "Rules"]

_LITERAL = sre_constants.LITERAL
_IGNORECASE = sre_constants.SRE_FLAG_IGNORECASE


def _required_literal(source: str) -> tuple[str, bool] | None:
    """(literal every match holds, compared ignoring case) or None."""
    try:
        parsed = sre_parser.parse(source)
    except (re.error, RecursionError):
        return None
    ignore = bool(parsed.state.flags & _IGNORECASE)
    best, run = "", []
    for op, value in parsed.data:
        if op is _LITERAL:
            run.append(chr(value))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
    if len(run) > len(best):
        best = "".join(run)
    if len(best) < 2 or not best.isascii():
        return None
    return (best.lower(), True) if ignore else (best, False)


class Rule:
    """One named rule: a compiled pattern and its prefilter."""

    __slots__ = ("literal", "lower", "name", "pattern")

    def __init__(self, name: str, pattern: re.Pattern[str], literal: tuple[str, bool] | None):
        self.name = name
        self.pattern = pattern
        self.literal = literal[0] if literal else None
        self.lower = literal[1] if literal else False


class Rules:
    """Rules tried in order; :meth:`first` names the first that matches a text."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def build(
        cls, patterns: list[tuple[str, re.Pattern[str]]], terms: tuple[str, list[str]] | None
    ) -> Rules:
        """Named patterns, then (name, words): a deny list matched literally, ignoring case."""
        rules = [Rule(name, p, _required_literal(p.pattern)) for name, p in patterns]
        if terms is not None and terms[1]:
            name, words = terms
            for word in sorted(words, key=len, reverse=True):
                literal = (word.lower(), True) if word.isascii() else None
                rules.append(Rule(name, re.compile(re.escape(word), re.IGNORECASE), literal))
        return cls(rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def first(self, text: str) -> str | None:
        """The name of the first rule matching ``text``, or None."""
        ascii_text = text.isascii()
        lowered: str | None = None
        for rule in self.rules:
            literal = rule.literal
            if literal is not None and ascii_text:
                if rule.lower:
                    if lowered is None:
                        lowered = text.lower()
                    if literal not in lowered:
                        continue
                elif literal not in text:
                    continue
            if rule.pattern.search(text) is not None:
                return rule.name
        return None
