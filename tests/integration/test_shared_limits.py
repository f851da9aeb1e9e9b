"""``relay serve`` makes the shared memory of the limits before its workers start, hands them
its name, keeps it across a SIGHUP reload and a worker's respawn, and removes it when it
stops."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.integration.gateway import Gateway
from tests.integration.test_config_reload import wait_for

SHM = Path("/dev/shm")


def workers_of(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.add(int(entry.name))
    return found


def handed_name(pid: int) -> str | None:
    """The segment name in the environment of process ``pid``."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if entry.startswith(b"RELAY_LIMITS_SHM="):
            return entry.split(b"=", 1)[1].decode()
    return None


@pytest.mark.parametrize(
    ("start_method", "stop_signal"),
    [("fork", signal.SIGTERM), ("spawn", signal.SIGINT)],
)
def test_serve_makes_and_removes_the_segment(
    tmp_path: Path, start_method: str, stop_signal: signal.Signals
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        f"import multiprocessing\nmultiprocessing.set_start_method({start_method!r}, force=True)\n"
    )
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p)
    }
    config = {"providers": {"e": {"kind": "echo"}}, "models": {"m": {"provider": "e"}}}
    gateway = Gateway(config, tmp_path, workers=2, env=env)
    try:
        main = gateway.process.pid
        [segment] = SHM.glob(f"relay-limits-{main}-*")
        assert segment.stat().st_mode & 0o777 == 0o600
        inode = segment.stat().st_ino
        workers = workers_of(main)
        assert len(workers) >= 2, workers
        if start_method == "spawn":
            # A spawned worker is a new program: its environment, as /proc shows it, names
            # the segment. (A forked one inherits it in memory, where /proc does not look.)
            assert {handed_name(pid) for pid in workers} == {segment.name}
        # A SIGHUP reloads the configuration into the same workers; the cells stay.
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "config reload (SIGHUP)")
        assert segment.stat().st_ino == inode
        assert workers_of(main) == workers
        restarted: set[int] = set()
        # A worker that crashes is respawned on the same cells.
        started = gateway.logs().count("Started worker-1 runtime")
        pid = int(re.findall(r"Spawning worker-1 with PID: (\d+)", gateway.logs())[-1])
        os.kill(pid, signal.SIGKILL)
        wait_for(gateway, "Started worker-1 runtime", count=started + 1)
        assert segment.stat().st_ino == inode
        [respawned] = workers_of(main) - restarted - workers
        if start_method == "spawn":
            assert handed_name(respawned) == segment.name
    finally:
        gateway.process.send_signal(stop_signal)
        assert gateway.stop() == 0
    assert not segment.exists()
    assert not list(SHM.glob(f"relay-limits-{main}-*"))
