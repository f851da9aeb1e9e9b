"""The documentation builds as a site: ``mkdocs build --strict`` (what ``make docs`` runs).

Strict mode turns MkDocs' warnings into a failed build; ``mkdocs.yml`` raises to warnings a
link to a missing page, an anchor no heading defines and a page left out of the navigation, so
this test fails on each of them. The built pages must not load anything from another host (no
web fonts): the site works offline, as the build does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.docs.markdown import ROOT


def _nav_pages(nav: list[Any]) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages |= _nav_pages(value)
        else:
            pages.add(value)
    return pages


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    on_disk = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert on_disk - pages == set(), "pages missing from mkdocs.yml's nav"
    assert pages - on_disk == set(), "mkdocs.yml's nav names pages that do not exist"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    for page in ("index.html", "configuration/index.html", "operations/index.html"):
        html = (site / page).read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html, page
