"""A Relay middleware plugin: internal names never leave the building.

``kind: glossary`` replaces each internal term of the prompt by its public stand-in before the
request is routed (so the provider, the cache key and the ledger's token counts see the
stand-in), and puts the internal term back into JSON answers for the caller.

```yaml
policies:
  names:
    kind: glossary
    terms: {Project Aurora: the project, Zeta-9: the device}
middleware: [names]
```

Install the package next to Relay (``pip install ./examples/middleware-plugin``); its entry
point (``[project.entry-points."relay.middleware"] glossary = "relay_glossary:build"``)
makes ``glossary`` a kind like the built-ins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from relay.exchange import Exchange
from relay.policies.base import Policy, PolicySpec
from relay.policies.texts import rewrite_texts
from relay.stage import AnswerHook, StreamHook, Tap


class _Restore:
    """The answer hook: stand-ins back to the internal terms, in the JSON answer's strings."""

    def __init__(self, back: Mapping[str, str]) -> None:
        # Replaced inside JSON strings, so each side is written as JSON writes it.
        self.back = {
            json.dumps(public)[1:-1].encode(): json.dumps(term)[1:-1].encode()
            for public, term in back.items()
        }

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        for public, term in self.back.items():
            body = body.replace(public, term)
        return body


class Glossary:
    """One ``glossary`` block: built once, shared by every request (no per-request state)."""

    stream_hook: StreamHook | None = None
    tap: Tap | None = None

    def __init__(self, spec: PolicySpec) -> None:
        terms = spec.settings.get("terms")
        if not isinstance(terms, Mapping) or not terms:
            # Errors name the setting by its path: check-config prints them as they are.
            raise ValueError(f"policies.{spec.name}.terms: expected a mapping of term: stand-in")
        for term, public in terms.items():
            if not isinstance(term, str) or not isinstance(public, str) or not term or not public:
                raise ValueError(f"policies.{spec.name}.terms.{term}: expected a non-empty string")
        self.name = spec.name
        self.terms = dict(terms)
        self.pattern = re.compile(
            "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        )
        self.answer_hook: AnswerHook | None = _Restore({v: k for k, v in terms.items()})

    def on_request(self, ex: Exchange) -> None:
        """Rewrite every text the caller wrote (None: leave a text as it is)."""

        def swap(text: str) -> str | None:
            if self.pattern.search(text) is None:
                return None
            return self.pattern.sub(lambda m: self.terms[m.group(0)], text)

        rewrite_texts(ex, swap)


def build(spec: PolicySpec) -> Policy:
    """The factory Relay calls once per configuration (at start and on reload)."""
    return Glossary(spec)
