"""``relay`` command line: serve, check-config."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from relay.config import ConfigError, load_config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``relay`` console script and ``python -m relay``."""
    parser = argparse.ArgumentParser(
        prog="relay", description="Relay, an OpenAI-compatible LLM gateway"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the gateway (embedded default config if none)")
    serve.add_argument(
        "--config", help="config file (default: $RELAY_CONFIG, else embedded default)"
    )
    serve.add_argument("--host", help="address to bind (overrides server.host)")
    serve.add_argument("--port", type=int, help="port to bind (overrides server.port)")
    serve.add_argument("--workers", type=int, help="worker processes (overrides server.workers)")

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument(
        "path", nargs="?", help="config file (default: $RELAY_CONFIG, else embedded)"
    )

    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.path)
    return serve_command(args.config, args.host, args.port, args.workers)


def check_config(path: str | None) -> int:
    """Print every problem of a config by path; exit 0 when it is valid."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{config.source}: ok ({len(config.providers)} providers, {len(config.models)} models)")
    if config.ratelimit.enabled:
        print("note: ratelimit is accepted but not enforced yet in this version", file=sys.stderr)
    return 0


def serve_command(path: str | None, host: str | None, port: int | None, workers: int | None) -> int:
    """Validate the config, then hand over to granian (RSGI, uvloop) with one app per worker."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if path:
        # Workers load the config themselves, from the same file.
        os.environ["RELAY_CONFIG"] = os.path.abspath(path)

    from granian import Granian
    from granian.constants import Interfaces, Loops

    server = config.server
    Granian(
        "relay.app:create_app",
        factory=True,
        interface=Interfaces.RSGI,
        loop=Loops.uvloop,
        address=host or server.host,
        port=port or server.port,
        workers=workers or server.workers,
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=int(server.drain_timeout_s) + 5,
    ).serve()
    return 0
