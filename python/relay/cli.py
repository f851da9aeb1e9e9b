"""``relay`` command line: ``serve`` and ``check-config``, which validate alike.

Both read the configuration through :func:`relay.config.read_config` with the same environment
overrides, so what ``check-config`` accepts, ``serve`` starts, and what it refuses, ``serve``
refuses with the same words.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from relay import __version__
from relay.admin.cli import add_admin_commands, run_admin_command
from relay.config import ConfigError, find_config, read_config
from relay.config.discover import DISCOVERED
from relay.config.notices import warnings
from relay.pidfile import NoGateway, default_pid_file, gateway_pid

_DISCOVERY = (
    "default: $RELAY_CONFIG, else "
    + ", else ".join(f"./{name}" for name in DISCOVERED)
    + ", else the embedded default"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also what ``relay`` alone prints)."""
    parser = argparse.ArgumentParser(
        prog="relay",
        description="Relay, an OpenAI-compatible LLM gateway.",
        epilog="Start with `relay serve`: the embedded default config, the offline echo "
        "provider, on http://127.0.0.1:8080/v1. `relay COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the gateway",
        description="Serve the gateway (SIGTERM or Ctrl-C: drain in-flight requests, then stop). "
        "An edit of the config file is applied without a restart once it is valid; SIGHUP "
        "and `relay reload` ask for the same reload.",
    )
    serve.add_argument("--config", metavar="PATH", help=f"config file ({_DISCOVERY})")
    serve.add_argument("--host", help="IP address to listen on (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port and SERVER_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (overrides server.workers)")
    serve.add_argument(
        "--log-level",
        metavar="LEVEL",
        help="critical, error, warning, info or debug (overrides server.log_level and "
        "RELAY_LOG_LEVEL)",
    )
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        help="share the port with another Relay already listening on it (SO_REUSEPORT); "
        "without it, a port in use is refused",
    )

    serve.add_argument(
        "--pid-file",
        metavar="PATH",
        help="where to write the main process's pid, for `relay reload` (default: "
        "relay-PORT.pid in $XDG_RUNTIME_DIR, else the temporary directory; none with "
        "--reuse-port unless given)",
    )

    reload = commands.add_parser(
        "reload",
        help="ask a running gateway to reload its config file",
        description="Validate the config file as check-config does, then send SIGHUP to the "
        "gateway serving it (found by its pid file): it swaps the new config in without a "
        "restart, or keeps the running one and logs why. Exit status 0 when the signal was "
        "sent, 1 when the file is invalid or no gateway was found.",
    )
    reload.add_argument("--config", metavar="PATH", help=f"config file ({_DISCOVERY})")
    reload.add_argument("--port", type=int, help="the gateway's port (default: the config's)")
    reload.add_argument("--pid-file", metavar="PATH", help="the gateway's pid file")

    check = commands.add_parser(
        "check-config",
        help="validate a config and list every problem, without serving",
        description="Validate a config (with the environment overrides serve would apply) and "
        "list every problem by path. Exit status 0 when valid, 1 when not.",
    )
    check.add_argument("path", nargs="?", help=f"config file ({_DISCOVERY})")
    add_admin_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``relay`` console script and ``python -m relay``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (code := run_admin_command(args)) is not None:
        return code
    if args.command == "check-config":
        return check_config(args.path)
    if args.command == "serve":
        return serve_command(args)
    if args.command == "reload":
        return reload_command(args)
    parser.print_help()
    return 0


def check_config(path: str | None) -> int:
    """Print every problem of a config by path; exit 0 when it is valid."""
    source = find_config(path, os.environ, flag="the command line")
    try:
        config = read_config(source, os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{source.name}: ok ({len(config.providers)} providers, {len(config.models)} models)")
    for line in warnings(config):
        print(f"warning: {line}", file=sys.stderr)
    return 0


def serve_command(args: argparse.Namespace) -> int:
    """Validate the config with the flags, then serve it (see :mod:`relay.serve`)."""
    from relay.serve import serve  # here: check-config and --help need not import granian

    source = find_config(args.config, os.environ)
    flags = {
        "--host": args.host,
        "--port": args.port,
        "--workers": args.workers,
        "--log-level": args.log_level,
    }
    try:
        config = read_config(source, os.environ, flags)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    pid_file = Path(args.pid_file) if args.pid_file else None
    if pid_file is None and not args.reuse_port:
        pid_file = default_pid_file(config.server.port)
    return serve(
        config,
        source,
        reuse_port=args.reuse_port,
        reload=lambda: read_config(source, os.environ, flags),
        pid_file=pid_file,
        # A file a killed gateway left at the default path is removed (see relay.pidfile).
        stale_pid_file=pid_file is not None and not args.pid_file,
    )


def reload_command(args: argparse.Namespace) -> int:
    """``relay reload``: validate the file, then SIGHUP the gateway of its port."""
    source = find_config(args.config, os.environ)
    try:
        config = read_config(source, os.environ, {"--port": args.port})
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print("relay: not reloading; the gateway keeps its running config", file=sys.stderr)
        return 1
    path = Path(args.pid_file) if args.pid_file else default_pid_file(config.server.port)
    try:
        pid = gateway_pid(path)
        os.kill(pid, signal.SIGHUP)
    except (NoGateway, OSError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    print(f"relay: asked the gateway (pid {pid}) to reload {source.name}; its log says the outcome")
    return 0
