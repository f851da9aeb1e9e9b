#!/usr/bin/env python3
"""Fail when a tracked file is binary or large, unless scripts/allowed-files.txt names it.

Run by ``make lint``. A wheel, a database or a profile committed by mistake stays in the history
of every clone for good; this keeps them out. Tracked means in git's index (``git ls-files``),
so a file staged for the next commit is checked too. Binary: a NUL byte, or not UTF-8. Large:
over ``LIMIT_BYTES``. Symbolic links are not read (git stores only their target).

The allow-list has one repository path a line, each with the reason after a ``#``; an entry that
names no tracked file fails too, so the list never outlives its files.

Usage: scripts/check_files.py [REPOSITORY]   (default: the checkout this script is in)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIMIT_BYTES = 512 * 1024
ALLOW_LIST = "scripts/allowed-files.txt"
_SYMLINK_MODE = "120000"
_SUBMODULE_MODE = "160000"


def tracked(root: Path) -> list[str]:
    """Paths of the regular files in git's index (no links, no submodules)."""
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--stage"],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "surrogateescape")
    paths = []
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        mode = meta.split(" ", 1)[0]
        if mode not in (_SYMLINK_MODE, _SUBMODULE_MODE):
            paths.append(path)
    return sorted(set(paths))  # a conflicted path is listed once per stage


def allowed(root: Path) -> dict[str, int]:
    """Allow-listed path -> its line in the allow-list."""
    path = root / ALLOW_LIST
    if not path.exists():
        return {}
    entries: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.split("#", 1)[0].strip()
        if name:
            entries[name] = number
    return entries


def problem(path: Path) -> str | None:
    """Why a file may not be tracked, or None."""
    size = path.stat().st_size
    if size > LIMIT_BYTES:
        return f"{size} bytes, over the {LIMIT_BYTES} byte limit"
    data = path.read_bytes()
    if b"\0" in data:
        return "binary (a NUL byte)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"binary (not UTF-8 at byte {exc.start})"
    return None


def check(root: Path) -> list[str]:
    """Every finding, one line each; empty when the repository is clean."""
    allow = allowed(root)
    files = tracked(root)
    found = []
    for name in files:
        path = root / name
        if not path.is_file() or name in allow:  # deleted in the work tree, or allowed
            continue
        if (why := problem(path)) is not None:
            found.append(f"{name}: {why}")
    present = set(files)
    found += [
        f"{ALLOW_LIST}:{line}: {name} is not a tracked file (remove the entry)"
        for name, line in allow.items()
        if name not in present
    ]
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    found = check(root)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(
            f"check_files: {len(found)} problem(s). Binaries and large files stay out of git; "
            f"if one must be tracked, add it to {ALLOW_LIST} with the reason.",
            file=sys.stderr,
        )
        return 1
    print(f"check_files: {len(tracked(root))} tracked files, none binary or large")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
