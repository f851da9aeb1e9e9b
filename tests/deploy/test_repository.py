"""What operators notice in the repository: the licence file matches pyproject.toml's, and a
user's own config (configs/config.yaml, which `relay serve` finds and which may hold keys) is
ignored by git."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_license_file_matches_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole licence, not a pointer to it


def test_user_config_is_ignored_by_git() -> None:
    for path in ("configs/config.yaml",):
        result = subprocess.run(
            ["git", "-C", str(ROOT), "check-ignore", "--quiet", "--no-index", path], check=False
        )
        assert result.returncode == 0, f"{path} is not ignored"
    # the examples users copy from stay tracked
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "configs"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "configs/config.example.yaml" in tracked and "configs/config.yaml" not in tracked
