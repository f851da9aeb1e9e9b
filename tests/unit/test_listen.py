"""The port check: a listener anywhere refuses, unless it agreed to share and we asked to."""

from __future__ import annotations

import socket

import pytest

from relay.listen import CannotListen, check_listen


def listener(reuse_port: bool) -> socket.socket:
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_free_port_passes() -> None:
    with listener(False) as sock:
        port = sock.getsockname()[1]
    check_listen("127.0.0.1", port, reuse_port=False)


def test_a_port_in_use_is_refused_even_when_the_holder_shares() -> None:
    with listener(True) as sock:
        port = sock.getsockname()[1]
        with pytest.raises(CannotListen, match=f"port {port} is already in use .*--reuse-port"):
            check_listen("127.0.0.1", port, reuse_port=False)
        check_listen("127.0.0.1", port, reuse_port=True)  # both share: allowed


def test_reuse_port_cannot_take_a_port_from_a_program_that_does_not_share() -> None:
    with listener(False) as sock:
        port = sock.getsockname()[1]
        with pytest.raises(CannotListen, match="held by a program that does not share it"):
            check_listen("127.0.0.1", port, reuse_port=True)


def test_an_address_of_another_machine() -> None:
    with pytest.raises(CannotListen, match=r"192\.0\.2\.1 is not an address of this machine"):
        check_listen("192.0.2.1", 8080, reuse_port=False)
