"""PII redaction: native throughput against Python's ``re``, and the CPU a typical ``redact``
policy adds per request, in one run.

    PYTHONPATH=python python3 benches/redaction.py [--tokens 100000] [--requests 4000] [--rounds 5]

1. Throughput. A prompt of about ``--tokens`` tokens (English prose, about 4 characters a
   token, with an email, a phone number, a card, an IBAN and an IP address every ~2 KB) is
   redacted by ``relay._native.Redactor`` (every built-in kind: one pass of one regex
   compiled from every pattern) and by the same patterns (``Redactor.patterns``, translated to
   Python's syntax: ``(?-u:`` scopes become ASCII-flagged groups) with ``re.finditer`` and the
   same checks in Python (Luhn, mod 97, octets), each kind in turn. Best of ``--rounds``.
2. Added CPU per request. The real app in process (benches/inprocess.py: granian and aiohttp
   replaced by in-memory stand-ins, thread CPU, best of ``--rounds``, apps taken in turns),
   with no policy and with a typical ``redact`` policy (email/phone/card/iban placeholders,
   ssn blocked, one custom pattern, ``restore: true``), on a 1k-token prompt (about 4 KB)
   with and without personal data, JSON and streamed (24 events through the restorer).

Figures are printed, never asserted (benches/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from benches.inprocess import CONFIG, CORE, in_memory, per_request  # noqa: E402
from relay.app import RelayApp  # noqa: E402
from relay.config import parse_config  # noqa: E402
from relay.native import RedactionTable, Redactor  # noqa: E402

PROSE = (
    "The quarterly review covered shipping delays, the new warehouse in Leeds and the "
    "supplier contracts that expire in March. Please summarise the open questions for the "
    "board and list who owns each follow-up, with dates where we agreed them. "
)
PII = (
    "Contact Ana at ana.lopez@example.org or +44 20 7946 0958; refund card "
    "4111 1111 1111 1111 to IBAN DE89 3704 0044 0532 0130 00 (login from 203.0.113.7). "
)

POLICY = """
policies:
  pii:
    kind: redact
    entities: {email: placeholder, phone: placeholder, card: placeholder, iban: placeholder, ssn: block}
    custom: {employee_id: "EMP-[0-9]{6}"}
    restore: true
middleware: [pii]
"""


def prompt(chars: int, pii_every: int = 2000) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        block = PROSE * (pii_every // len(PROSE)) + PII
        parts.append(block)
        size += len(block)
    return "".join(parts)[:chars]


# -- Python's re with the same patterns and checks -----------------------------------------


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        v = (ord(ch) - 48) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def mod97(s: str) -> bool:
    s = s.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def octets(s: str) -> bool:
    return all(int(o) <= 255 for o in s.split("."))


CHECKS: dict[str, Callable[[str], bool]] = {
    "card": lambda s: luhn(s.replace(" ", "").replace("-", "")),
    "iban": mod97,
    "ipv4": octets,
}


def python_patterns(redactor: Redactor) -> list[tuple[str, re.Pattern[str]]]:
    out = []
    for kind, source in zip(redactor.kinds, redactor.patterns, strict=True):
        py = source.replace("(?i-u:", "(?i:").replace("(?-u:", "(?:")
        out.append((kind, re.compile(py, re.ASCII)))
    return out


def python_redact(patterns: list[tuple[str, re.Pattern[str]]], text: str) -> str:
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in patterns:
        check = CHECKS.get(kind)
        for m in pattern.finditer(text):
            if check is None or check(m.group()):
                spans.append((m.start(), m.end(), kind))
    spans.sort()
    out, at, table = [], 0, {}
    for start, end, kind in spans:
        if start < at:
            continue
        value = text[start:end]
        ph = table.setdefault(value, f"[{kind.upper()}_{len(table) + 1}]")
        out += (text[at:start], ph)
        at = end
    out.append(text[at:])
    return "".join(out)


def best_of(rounds: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def throughput(tokens: int, rounds: int) -> None:
    text = prompt(tokens * 4)
    redactor = Redactor([(k, "placeholder") for k in Redactor.builtin_kinds()])
    patterns = python_patterns(redactor)
    native = best_of(rounds, lambda: redactor.redact(text, RedactionTable()))
    python = best_of(rounds, lambda: python_redact(patterns, text))
    mb = len(text.encode()) / 1e6
    found = len(redactor.find(text))
    print(f"redaction of a {tokens:,}-token prompt ({mb:.2f} MB, {found} values, 8 kinds)")
    print(f"  native Redactor   {native * 1000:8.2f} ms   {mb / native:8.1f} MB/s")
    print(f"  Python re         {python * 1000:8.2f} ms   {mb / python:8.1f} MB/s")
    print(f"  ratio             {python / native:8.1f}x")


def body(text: str, stream: bool) -> bytes:
    extra = b',"stream":true' if stream else b""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').encode()
    return (
        b'{"model":"bench-model","messages":[{"role":"system","content":"be brief"},'
        b'{"role":"user","content":"' + escaped + b'"}]' + extra + b"}"
    )


def per_request_cpu(requests: int, rounds: int) -> None:
    apps = {
        "none": in_memory(RelayApp(parse_config(CONFIG + CORE, "bench"))),
        "redact": in_memory(RelayApp(parse_config(CONFIG + CORE + POLICY, "bench"))),
    }
    clean = (PROSE * 30)[:4300]
    with_pii = (PROSE * 30)[:4000] + PII
    cases = [
        ("JSON, 1k tokens, no PII", clean, False),
        ("JSON, 1k tokens, 5 values", with_pii, False),
        ("stream, 1k tokens, 5 values", with_pii, True),
    ]
    loop = asyncio.new_event_loop()
    print(f"\n{'case':<30}{'no policy':>12}{'redact':>10}{'added':>10}   (us CPU/request)")
    for name, text, stream in cases:
        payload = body(text, stream)
        n = requests // (4 if stream else 1)
        best = {key: float("inf") for key in apps}
        for _ in range(rounds):
            for key, app in apps.items():
                best[key] = min(best[key], loop.run_until_complete(per_request(app, payload, n)))
        added = best["redact"] - best["none"]
        print(f"{name:<30}{best['none']:>12.1f}{best['redact']:>10.1f}{added:>+10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    throughput(args.tokens, args.rounds)
    per_request_cpu(args.requests, args.rounds)


if __name__ == "__main__":
    main()
