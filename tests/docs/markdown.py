"""The fenced code blocks of the documentation a user reads, with the marker that classifies each.

The convention (see ``test_blocks.py`` for what each kind is checked against): an HTML comment on
the line right before an opening fence says what the block is. It is invisible on GitHub.

    <!-- runnable -->      a ```sh or ```python block, run against a live gateway
    <!-- not run: WHY -->  a ```sh or ```python block that is not run (a build, a transcript, ...)
    <!-- fragment -->      a ```yaml block that is part of a config (it names providers or models
                           defined elsewhere); without it a ```yaml block is a whole config
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

YAML = frozenset({"yaml", "yml"})
SHELL = frozenset({"sh", "bash", "shell", "console"})
PYTHON = frozenset({"python", "py"})

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_MARKER = re.compile(
    r"^\s*<!--\s*(?P<kind>runnable|fragment|not run)\b\s*:?\s*(?P<why>.*?)\s*-->\s*$"
)


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its marker (if any) and its text."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    marker: str | None  # "runnable", "fragment", "not run", or None
    why: str  # the marker's reason ("not run: a transcript" -> "a transcript")
    text: str

    @property
    def where(self) -> str:
        """``README.md:65``: the id a failing test shows."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """The pages a user copies from: the README and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        end = i + 1
        while end < len(lines) and not lines[end].lstrip().startswith(fence):
            end += 1
        marker = _MARKER.match(lines[i - 1]) if i > 0 else None
        indent = len(opening["indent"])
        body = [line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : end]]
        found.append(
            Block(
                path=path,
                line=i + 1,
                lang=opening["lang"].lower(),
                marker=marker["kind"] if marker else None,
                why=marker["why"] if marker else "",
                text="\n".join(body) + "\n",
            )
        )
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    """Every fenced block of every page of :func:`documents`."""
    return [block for path in documents() for block in blocks(path)]


def inline_code(path: Path) -> list[tuple[int, str]]:
    """Every inline code span outside fenced blocks, with its line: ``(12, "{kind: echo}")``."""
    spans: list[tuple[int, str]] = []
    inside = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            spans += [
                (number, m.group(2)) for m in re.finditer(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", line)
            ]
    return spans
