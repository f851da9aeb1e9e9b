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
