"""Problems render one line each, whatever the file's keys hold."""

from __future__ import annotations

from relay.config.problems import Problems


def test_a_key_with_a_newline_stays_on_its_line() -> None:
    problems = Problems()
    problems.add("models.a\nb.provider", "unknown provider 'x' (known: e)")
    problems.add("server.p\tort\x00", "unknown field")
    assert problems.lines() == [
        "models.a\\nb.provider: unknown provider 'x' (known: e)",
        "server.p\\tort\\x00: unknown field",
    ]


def test_printable_text_is_unchanged() -> None:
    problems = Problems()
    problems.add("models.café", "unknown provider 'ü' (known: e)")
    assert problems.lines() == ["models.café: unknown provider 'ü' (known: e)"]
