"""The pid file ``relay reload`` finds a gateway by, and the stale ones a killed gateway
leaves."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay.pidfile import NoGateway, default_pid_file, gateway_pid, remove_stale


def sleeper(*argv: str) -> subprocess.Popen[bytes]:
    """A process whose command line is known (/proc shows it once it has started)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    while not cmdline.read_bytes():
        time.sleep(0.01)
    return process


def test_default_path_is_per_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_pid_file(8081) == tmp_path / "relay-8081.pid"


def test_stale_files_go_and_a_live_gateways_stays(tmp_path: Path) -> None:
    path = tmp_path / "relay-1.pid"
    path.write_text("not a pid")
    remove_stale(path)
    assert not path.exists()
    other, gateway = sleeper(), sleeper("relay", "serve")
    try:
        path.write_text(str(other.pid))  # a killed gateway's pid, reused by another program
        remove_stale(path)
        assert not path.exists()
        path.write_text(str(gateway.pid))  # a gateway on the same port, another address
        remove_stale(path)
        assert path.exists()
        assert gateway_pid(path) == gateway.pid
    finally:
        for process in (other, gateway):
            process.kill()
            process.wait()
    with pytest.raises(NoGateway, match="not running"):
        gateway_pid(path)
    path.unlink()
    with pytest.raises(NoGateway, match="no pid file"):
        gateway_pid(path)
