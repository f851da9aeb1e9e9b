"""scripts/check_files.py (run by ``make lint``): no binary or large file tracked by accident."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_files.py"
LIMIT = 512 * 1024


def run(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(repo)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one text file in its index."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "README.md").write_text("# hello\n")
    add(tmp_path, "README.md")
    return tmp_path


def add(repo: Path, *paths: str) -> None:
    subprocess.run(["git", "-C", str(repo), "add", *paths], check=True)


def test_the_repository_tracks_no_binary_or_large_file() -> None:
    result = run(ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("check_files: ")


def test_text_files_pass(repo: Path) -> None:
    (repo / "big-but-fine.txt").write_text("x" * (LIMIT - 1))
    (repo / "unicode.md").write_text("→ ✓ é\n")
    add(repo, ".")
    assert run(repo).returncode == 0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"PK\x03\x04\x00\x00wheel", "binary (a NUL byte)"),
        (b"caf\xe9\n", "binary (not UTF-8 at byte 3)"),
        (b"x" * (LIMIT + 1), f"{LIMIT + 1} bytes, over the {LIMIT} byte limit"),
    ],
)
def test_a_binary_or_large_file_fails_by_name(repo: Path, content: bytes, why: str) -> None:
    (repo / "dir").mkdir()
    (repo / "dir" / "thing.whl").write_bytes(content)
    add(repo, "dir/thing.whl")
    result = run(repo)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"dir/thing.whl: {why}"


def test_only_tracked_files_count(repo: Path) -> None:
    (repo / "untracked.bin").write_bytes(b"\x00" * 10)
    (repo / "link.md").symlink_to("README.md")
    add(repo, "link.md")
    assert run(repo).returncode == 0


def test_a_file_staged_but_not_committed_counts(repo: Path) -> None:
    (repo / "relay.db").write_bytes(b"SQLite format 3\x00")
    add(repo, "relay.db")
    assert run(repo).returncode == 1


def test_the_allow_list_lets_a_named_file_through(repo: Path) -> None:
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    (repo / "scripts").mkdir()
    (repo / "scripts" / "allowed-files.txt").write_text(
        "# comment\nlogo.png   # the project's logo\n"
    )
    add(repo, ".")
    assert run(repo).returncode == 0


def test_a_stale_allow_list_entry_fails(repo: Path) -> None:
    (repo / "scripts").mkdir()
    (repo / "scripts" / "allowed-files.txt").write_text("# comment\ngone.whl  # was needed\n")
    add(repo, ".")
    result = run(repo)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "scripts/allowed-files.txt:2: gone.whl is not a tracked file (remove the entry)"
    )
