"""relay.healthcheck: the image's HEALTHCHECK finds the port as serve does and asks /healthz."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay import healthcheck
from tests.integration.gateway import Gateway, free_port


def test_target_follows_the_config_file_and_server_port(tmp_path: Path) -> None:
    assert healthcheck.target({}) == ("127.0.0.1", 8080)  # the embedded default
    path = tmp_path / "config.yaml"
    path.write_text("server: {host: '::', port: 9123}\n")
    assert healthcheck.target({"RELAY_CONFIG": str(path)}) == ("::1", 9123)
    # SERVER_PORT moves it (":PORT" listens everywhere; the check asks on loopback)
    env = {"RELAY_CONFIG": str(path), "SERVER_PORT": ":7001"}
    assert healthcheck.target(env) == ("::1", 7001)
    assert healthcheck.target({"SERVER_PORT": "0.0.0.0:7002"}) == ("127.0.0.1", 7002)


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_check_reports_status_and_refusal(server: http.server.HTTPServer) -> None:
    port = server.server_address[1]
    assert healthcheck.check("127.0.0.1", port) is None
    _Handler.status = 503
    try:
        assert healthcheck.check("127.0.0.1", port) == (
            f"http://127.0.0.1:{port}/healthz answered 503"
        )
    finally:
        _Handler.status = 200
    closed = free_port()
    problem = healthcheck.check("127.0.0.1", closed)
    assert problem is not None and problem.startswith(f"http://127.0.0.1:{closed}/healthz: ")


def test_main_exit_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: nope}\n")
    monkeypatch.setenv("RELAY_CONFIG", str(bad))
    assert healthcheck.main([]) == 1
    assert "healthcheck: cannot read the config" in capsys.readouterr().err
    monkeypatch.delenv("RELAY_CONFIG")
    monkeypatch.setenv("SERVER_PORT", str(free_port()))
    assert healthcheck.main([]) == 1
    assert "/healthz: " in capsys.readouterr().err


@pytest.mark.integration
def test_main_against_a_real_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway(None, tmp_path)
    try:
        monkeypatch.delenv("RELAY_CONFIG", raising=False)
        monkeypatch.setenv("SERVER_PORT", str(gateway.port))
        assert healthcheck.main([]) == 0
    finally:
        gateway.stop()
