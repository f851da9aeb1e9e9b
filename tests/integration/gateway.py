"""Start the real gateway as its own process on loopback, with a config written for the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """A ``relay serve`` process; ``base_url`` ends in ``/v1`` like an SDK wants."""

    def __init__(
        self,
        config: dict[str, object] | None,
        tmp: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        python: str | None = None,
        app: str | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        args = [
            python or sys.executable,
            "-m",
            "relay",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        path = None
        if config is not None:
            path = tmp / f"relay-{self.port}.yaml"
            path.write_text(yaml.safe_dump(config))
            args += ["--config", str(path)]
        self.log_path = tmp / f"relay-{self.port}.log"
        self._log = self.log_path.open("wb")
        run_env = {k: v for k, v in os.environ.items() if k not in ("RELAY_CONFIG", "SERVER_PORT")}
        run_env.update(env or {})
        if app is not None:
            # Another composition of the real app (a test's extra stage or hook), served by
            # granian itself; the factory loads the config from RELAY_CONFIG.
            args = [
                python or sys.executable,
                "-m",
                "granian",
                "--interface",
                "rsgi",
                "--loop",
                "uvloop",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                app,
            ]
            if path is not None:
                run_env["RELAY_CONFIG"] = str(path)
            root = str(Path(__file__).resolve().parents[2])
            run_env["PYTHONPATH"] = os.pathsep.join(
                p for p in (root, run_env.get("PYTHONPATH", "")) if p
            )
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=run_env, cwd=tmp
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        """Everything the process wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        """Send SIGTERM (graceful shutdown) without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, and return the exit code (kill if it hangs)."""
        self.terminate()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code
