"""Every page, file and section the README and docs/*.md point at exists.

Relative links (``[notes](notes.md)``, ``[Responses](#the-responses-api)``) resolve from the
page, as GitHub resolves them; a Markdown file named in code (``docs/tenants.md``) must exist
from the page or the repository root (a page once named ``DESIGN.md``, which is not there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, documents, inline_code

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
_MD_FILE = re.compile(r"^[\w./-]+\.md$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (outside code blocks)."""
    found: set[str] = set()
    inside = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif not inside and (match := _HEADING.match(line)):
            found.add(slug(match.group(1)))
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """Every relative link target of a page, with its line."""
    return [
        (number, target)
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        for target in _LINK.findall(line)
        if not re.match(r"^[a-z]+:", target)  # http:, https:, mailto:
    ]


LINKS = [(page, line, target) for page in documents() for line, target in links(page)]
NAMED = [
    (page, line, span)
    for page in documents()
    for line, span in inline_code(page)
    if _MD_FILE.match(span)
]


def test_the_slugs_are_githubs() -> None:
    assert slug("Pass-through of every other /v1 route") == "pass-through-of-every-other-v1-route"
    assert slug("/v1/messages: Anthropic clients") == "v1messages-anthropic-clients"


@pytest.mark.parametrize(
    ("page", "line", "target"), LINKS, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in LINKS]
)
def test_relative_link_resolves(page: Path, line: int, target: str) -> None:
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    where = f"{page.relative_to(ROOT)}:{line}"
    assert resolved.exists(), f"{where}: link to {target!r}, no file {resolved}"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), (
            f"{where}: no heading for #{anchor} in {path or page.name}"
        )


@pytest.mark.parametrize(
    ("page", "line", "name"), NAMED, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in NAMED]
)
def test_named_page_exists(page: Path, line: int, name: str) -> None:
    assert (page.parent / name).exists() or (ROOT / name).exists(), (
        f"{page.relative_to(ROOT)}:{line}: `{name}` names a page that does not exist"
    )
