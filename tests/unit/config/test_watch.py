"""The main process notices edits of the config file: once per burst of writes, also when the
file is replaced by a rename, never for a change that leaves its bytes as they were."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config.watch import ReloadQueue, watch_file


class Seen:
    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def __call__(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.count >= count, timeout), self.count


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Seen]]:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    seen, stop = Seen(), threading.Event()
    thread = watch_file(path, seen, stop)
    time.sleep(0.3)  # the watch is set up
    yield path, seen
    stop.set()
    thread.join(5)


def settle() -> None:
    """Longer than the quiet time and a poll of the watcher: anything pending is reported."""
    time.sleep(1.0)


def test_a_burst_of_writes_is_one_change(watched: tuple[Path, Seen]) -> None:
    path, seen = watched
    with path.open("w") as out:  # written in pieces, as a slow editor or cp would
        for piece in ("a: ", "2", "\n", "b: 3\n"):
            out.write(piece)
            out.flush()
            time.sleep(0.03)
    seen.wait_for(1)
    settle()
    assert seen.count == 1


def test_a_rename_over_the_file_is_a_change(watched: tuple[Path, Seen]) -> None:
    path, seen = watched
    staged = path.with_name(".c.yaml.tmp")
    staged.write_text("a: 5\n")
    os.replace(staged, path)
    seen.wait_for(1)
    # The new inode is watched too.
    path.write_text("a: 6\n")
    seen.wait_for(2)


def test_same_bytes_and_other_files_are_no_change(watched: tuple[Path, Seen]) -> None:
    path, seen = watched
    path.write_text("a: 1\n")
    (path.parent / "other.yaml").write_text("x\n")
    os.utime(path)
    settle()
    assert seen.count == 0


def test_a_file_restored_with_its_old_time_is_a_change(watched: tuple[Path, Seen]) -> None:
    """``cp -p`` of an older copy: the same size and modification time, new bytes (the change
    time still moves)."""
    path, seen = watched
    before = path.stat()
    path.write_text("a: 2\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    seen.wait_for(1)


def test_reloads_run_one_at_a_time_and_fold_requests() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def reload(why: str) -> None:
        started.set()
        release.wait(5)
        done.append(why)

    queue = ReloadQueue(reload)
    queue.start()
    queue.request("file changed")
    assert started.wait(5)
    queue.request("SIGHUP")
    queue.request("SIGHUP")
    queue.request("file changed")
    release.set()
    queue.stop()
    assert done == ["file changed", "SIGHUP, file changed"]


def test_the_target_of_a_symlink_is_watched(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    target = elsewhere / "relay.yaml"
    target.write_text("a: 1\n")
    link = tmp_path / "c.yaml"
    link.symlink_to(target)
    seen, stop = Seen(), threading.Event()
    thread = watch_file(link, seen, stop)
    try:
        time.sleep(0.3)
        target.write_text("a: 2\n")
        seen.wait_for(1)
    finally:
        stop.set()
        thread.join(5)


def test_a_configmap_volume_swap_is_a_change(tmp_path: Path) -> None:
    """Kubernetes mounts config.yaml -> ..data/config.yaml, ..data -> ..<time>/, and updates
    by writing a new ..<time>/ directory, swapping ..data and removing the old directory."""
    first = tmp_path / "..2026_12_03_15_00_01.1"
    first.mkdir()
    (first / "config.yaml").write_text("a: 1\n")
    (tmp_path / "..data").symlink_to(first.name)
    path = tmp_path / "config.yaml"
    path.symlink_to("..data/config.yaml")
    seen, stop = Seen(), threading.Event()
    thread = watch_file(path, seen, stop)
    try:
        time.sleep(0.3)
        for n in (2, 3):
            new = tmp_path / f"..2026_12_03_15_00_0{n}.1"
            new.mkdir()
            (new / "config.yaml").write_text(f"a: {n}\n")
            staged = tmp_path / "..data_tmp"
            staged.symlink_to(new.name)
            os.replace(staged, tmp_path / "..data")
            old = tmp_path / f"..2026_12_03_15_00_0{n - 1}.1"
            (old / "config.yaml").unlink()
            old.rmdir()
            seen.wait_for(n - 1)
    finally:
        stop.set()
        thread.join(5)
