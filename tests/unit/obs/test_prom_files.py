"""The multiprocess directory: made and removed per start; a dead worker's live gauges go,
its counters stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.obs import prom_files


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_workers_live_gauges_are_removed_and_its_counters_kept(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    names = [
        f"counter_{dead}.db",
        f"histogram_{dead}.db",
        f"gauge_livesum_{dead}.db",
        f"gauge_livemax_{dead}.db",
        f"gauge_livesum_{alive}.db",
        f"counter_{alive}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    prom_files.reap_dead(str(tmp_path))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [
            f"counter_{dead}.db",
            f"histogram_{dead}.db",
            f"gauge_livesum_{alive}.db",
            f"counter_{alive}.db",
        ]
    )


def test_the_directory_is_made_per_start_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prom_files.ENV, raising=False)
    assert prom_files.shared_dir() is None
    path = prom_files.make_dir()
    try:
        assert os.environ[prom_files.ENV] == path
        assert prom_files.shared_dir() == path
        assert os.stat(path).st_mode & 0o777 == 0o700
        Path(path, "counter_1.db").write_bytes(b"x")
    finally:
        prom_files.remove_dir(path)
    assert not os.path.exists(path)
    assert prom_files.ENV not in os.environ
    prom_files.remove_dir(None)  # metrics disabled: nothing was made
