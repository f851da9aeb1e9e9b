"""Background threads (the ledger's SQLite writer, the access-line writer) run at a lower
priority than the event loop's thread, which keeps its own."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from relay.background import background_nice, name_thread
from relay.ledger.sqlite import SqliteDatabase
from relay.obs.log import BufferedLines


def nice_of(native_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, native_id)


def test_the_sqlite_writer_thread_is_niced_and_the_loop_thread_is_not(tmp_path: Path) -> None:
    loop_nice = nice_of(threading.get_native_id())

    async def go() -> int:
        db = SqliteDatabase(str(tmp_path / "relay.db"))
        await db.connect()
        try:
            return await db._run(lambda conn: nice_of(threading.get_native_id()))
        finally:
            await db.close()

    assert asyncio.run(go()) == min(19, loop_nice + 10) == min(19, loop_nice + background_nice())
    assert nice_of(threading.get_native_id()) == loop_nice


def written(path: Path) -> None:
    """Wait for the writer thread's one line: the thread lives on after the test, and its first
    write must not land after the file is closed, on whatever a later test opens with the same
    descriptor number (seen in CI: a config file that began with ``one``)."""
    deadline = time.monotonic() + 5
    while path.read_bytes() != b"one\n" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.read_bytes() == b"one\n"


def test_the_access_line_writer_thread_is_niced(tmp_path: Path) -> None:
    loop_nice = nice_of(threading.get_native_id())
    with (tmp_path / "lines").open("wb") as sink:
        lines = BufferedLines(sink.fileno(), interval_s=0.01)
        lines.put(b"one\n")
        assert lines._thread is not None
        native_id = lines._thread.native_id
        assert native_id is not None
        deadline = time.monotonic() + 5
        while nice_of(native_id) == loop_nice and time.monotonic() < deadline:
            time.sleep(0.01)
        assert nice_of(native_id) == min(19, loop_nice + 10)
        written(tmp_path / "lines")
    assert nice_of(threading.get_native_id()) == loop_nice


@pytest.mark.parametrize(
    ("value", "nice"), [("", 10), ("0", 0), ("5", 5), ("40", 19), ("-3", 0), ("loud", 10)]
)
def test_relay_background_nice_sets_the_value(
    monkeypatch: pytest.MonkeyPatch, value: str, nice: int
) -> None:
    monkeypatch.setenv("RELAY_BACKGROUND_NICE", value)
    assert background_nice() == nice


def comm_of(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()


def test_the_writer_threads_carry_their_names_for_the_kernel(tmp_path: Path) -> None:
    async def sqlite_thread() -> tuple[str, str]:
        db = SqliteDatabase(str(tmp_path / "relay.db"))
        await db.connect()
        try:
            return await db._run(
                lambda conn: (threading.current_thread().name, comm_of(threading.get_native_id()))
            )
        finally:
            await db.close()

    name, comm = asyncio.run(sqlite_thread())
    assert name.startswith("relay-sqlite")
    assert comm == name[:15]

    with (tmp_path / "lines").open("wb") as sink:
        lines = BufferedLines(sink.fileno(), interval_s=0.01)
        lines.put(b"one\n")
        assert lines._thread is not None and lines._thread.native_id is not None
        deadline = time.monotonic() + 5
        while comm_of(lines._thread.native_id) != "relay-log" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert comm_of(lines._thread.native_id) == lines._thread.name == "relay-log"
        written(tmp_path / "lines")
    # The calling thread keeps its own name.
    assert not comm_of(threading.get_native_id()).startswith("relay-")


def test_a_name_is_cut_to_the_kernels_fifteen_bytes() -> None:
    seen: list[str] = []

    def run() -> None:
        name_thread("relay-a-rather-long-thread-name")
        seen.append(comm_of(threading.get_native_id()))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert seen == ["relay-a-rather-"]
