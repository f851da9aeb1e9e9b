"""``python -m relay.healthcheck``: exit 0 when the local gateway answers ``/healthz``.

The container image's ``HEALTHCHECK`` runs it. It finds the port the way ``relay serve`` does
(``--config``/``$RELAY_CONFIG``/discovery, then ``SERVER_PORT``), so a mounted config or an
environment variable that moves the port moves the check with it, and it asks on loopback:
inside a container the gateway listens on every interface, and loopback is one of them.
It imports only the config package (no granian, no app), so a check is one short process.
"""

from __future__ import annotations

import http.client
import os
import sys
from collections.abc import Mapping, Sequence

from relay.config import ConfigError, find_config, read_config

TIMEOUT_S = 3.0


def target(env: Mapping[str, str]) -> tuple[str, int]:
    """The loopback address and port that ``relay serve`` with this environment listens on."""
    config = read_config(find_config(None, env), env)
    host = config.server.host
    # An IPv6 listener (``::`` or an IPv6 address) is asked on IPv6 loopback.
    loopback = "::1" if ":" in host else "127.0.0.1"
    return loopback, config.server.port


def check(host: str, port: int, timeout: float = TIMEOUT_S) -> str | None:
    """None when ``GET /healthz`` answers 200, else what went wrong."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
    except OSError as exc:
        return f"http://{host}:{port}/healthz: {exc}"
    finally:
        conn.close()
    return None if status == 200 else f"http://{host}:{port}/healthz answered {status}"


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when healthy, 1 otherwise (the reason on stderr, which podman and Docker
    keep in the health log)."""
    del argv  # no options: the config and environment say where the gateway is
    try:
        host, port = target(os.environ)
    except ConfigError as exc:
        print(f"healthcheck: cannot read the config: {exc}", file=sys.stderr)
        return 1
    if (problem := check(host, port)) is not None:
        print(f"healthcheck: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
