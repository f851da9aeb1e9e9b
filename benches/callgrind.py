"""One Python run under valgrind's callgrind: its total instruction count (every thread), the
same on every run whatever else the machine does. Used by the ``*instructions.py`` and
``ledger_write.py`` benches."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def instructions(tree: Path, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Instructions of ``python argv...`` with ``tree``'s relay on the path (callgrind's
    total)."""
    full_env = {**os.environ, "PYTHONPATH": str(tree / "python"), **(env or {})}
    python = os.path.realpath(sys.executable)  # not a shim: valgrind follows the interpreter
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, *argv],
        env=full_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if not found:
        raise RuntimeError(f"no count from callgrind:\n{proc.stderr[-2000:]}")
    return int(found.group(1))
