"""A throwaway redis-server for tests, and a TCP proxy in front of it that can stop forwarding.

The server runs on a free loopback port with its files in a temp dir, persistence off.
:meth:`RedisServer.kill` ends it the hard way (SIGKILL, as a crash), :meth:`RedisServer.start`
brings it back on the same port. :class:`StallingProxy` stands for a Redis that hangs:
connections stay open, bytes stop flowing. A missing redis-server is an error, never a skip:
CI installs it (.ci/run).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.integration.gateway import free_port


class RedisServer:
    """One redis-server on a free port; :meth:`kill` and :meth:`start` keep the port."""

    def __init__(self, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="relay-redis-"))
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def address(self) -> str:
        """``HOST:PORT`` as ``redis.address`` takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
            "--logfile", str(self.root / "log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.root / "log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited: {log}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")

    def ping(self) -> bool:
        """True when the server answers PING (with AUTH first if it has a password)."""
        try:
            return self.command("PING") in (b"+PONG\r\n", b"-NOAUTH Authentication required.\r\n")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Send one command (inline RESP) and return the raw first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(resp(*args))
            return conn.recv(65536)

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def resp(*args: str) -> bytes:
    """One command in RESP, as a client sends it."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class StallingProxy:
    """Forwards loopback TCP to ``port``; :meth:`stall` stops moving bytes (connections stay
    open, new ones are accepted and held), :meth:`flow` moves them again, :meth:`drop` closes
    the connections open now."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the proxy."""
        return f"127.0.0.1:{self.port}"

    def stall(self) -> None:
        """Stop forwarding: what arrives is held, nothing is answered."""
        self._flowing.clear()

    def flow(self) -> None:
        """Forward again (what was held goes first)."""
        self._flowing.set()

    def drop(self) -> None:
        """Close every open connection at once (both sides see it end), as a Redis restart or
        a network cut would; new connections are still accepted and forwarded."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Close the listener and every connection."""
        self._closed = True
        self._flowing.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                if self._closed:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
