"""Can this process listen on HOST:PORT? Asked before granian starts, answered in one line.

Granian binds with SO_REUSEPORT, so a second gateway on a busy port starts silently and the two
split the traffic, one of them perhaps serving an old configuration; and a port held by another
program ends in a long Rust backtrace. A plain bind without SO_REUSEPORT fails on a port that
anyone listens on, which is the question; with ``--reuse-port`` the probe sets SO_REUSEPORT
too, so it passes only when the holder agreed to share (another Relay).
"""

from __future__ import annotations

import errno
import ipaddress
import socket


class CannotListen(Exception):
    """The address cannot be served; the message is one line for the user."""


def check_listen(host: str, port: int, *, reuse_port: bool) -> None:
    """Raise :class:`CannotListen` unless binding ``host:port`` would succeed."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as granian sets it: connections of a stopped gateway in TIME_WAIT are fine.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CannotListen(_explain(exc, where, port, reuse_port)) from None


def _explain(exc: OSError, where: str, port: int, reuse_port: bool) -> str:
    if exc.errno == errno.EADDRINUSE and reuse_port:
        return (
            f"cannot listen on {where}: port {port} is held by a program that does not share it; "
            "stop it or choose another port with --port"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: port {port} is already in use (another Relay or another "
            "program); stop it, choose another port with --port, or pass --reuse-port to share "
            "it with another Relay"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {where}: {where.rsplit(':', 1)[0]} is not an address of this machine"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need privileges)"
    return f"cannot listen on {where}: {exc.strerror or exc}"
