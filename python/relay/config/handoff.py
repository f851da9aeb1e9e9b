"""The configuration handed from the main process to its workers.

The main process validates the configuration once and publishes it here; every granian worker,
first start or respawn (after a crash, on SIGHUP), decodes that exact value instead of reading
the YAML file again. So a file broken after start-up can never stop a running gateway, and all
workers serve the same configuration.

It travels as msgspec JSON in an environment variable: workers are forked (or spawned) from the
main process and inherit its environment, the value needs no clean-up (a temporary file would
outlive a killed process, with provider keys in it), and it is read once per worker start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

import msgspec

from relay.config.model import Config

HANDOFF_VAR = "RELAY_CONFIG_JSON"


def publish(config: Config, environ: MutableMapping[str, str] | None = None) -> None:
    """Make ``config`` the one that workers started from now on will serve."""
    target = os.environ if environ is None else environ
    target[HANDOFF_VAR] = msgspec.json.encode(config).decode()


def received(environ: Mapping[str, str] | None = None) -> Config | None:
    """The configuration the main process published, or None when run without it."""
    text = (os.environ if environ is None else environ).get(HANDOFF_VAR)
    if text is None:
        return None
    return msgspec.json.decode(text, type=Config)
