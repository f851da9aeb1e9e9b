"""``${VAR}`` references, and the settings that the environment and the command line override.

Precedence, lowest first: the file, the environment (``SERVER_PORT``, ``REDIS_ADDRESS``,
``REDIS_PASSWORD``, ``RELAY_LOG_LEVEL``, ``OTEL_*``: see ``ENV_OVERRIDES``), command-line flags. Each override is written into the
raw tree before validation, so it is checked like the file, and its origin is recorded so that a
problem names the variable or flag rather than a file line the user never wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from relay.config.problems import Problems

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

# environment variable -> (section, key) it overrides
ENV_OVERRIDES = {
    "REDIS_ADDRESS": ("redis", "address"),
    "REDIS_PASSWORD": ("redis", "password"),
    "RELAY_LOG_LEVEL": ("server", "log_level"),
    "DATABASE_URL": ("database", "url"),
    "RELAY_ADMIN_KEY": ("auth", "admin_key"),
    "RELAY_AUTH_MODE": ("auth", "mode"),
    "RELAY_UI_SECRET": ("ui", "session_secret"),
    # OpenTelemetry's standard variables (the SDK reads the others itself: headers, timeouts).
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("telemetry", "endpoint"),
    "OTEL_TRACES_EXPORTER": ("telemetry", "traces_exporter"),
    "OTEL_SERVICE_NAME": ("telemetry", "service_name"),
    "TOKENS_PER_MINUTE": ("limits", "tokens_per_minute"),
}
# `relay serve` flag -> server key (SERVER_PORT and --port take the same forms)
FLAG_OVERRIDES = {
    "--host": "host",
    "--port": "port",
    "--workers": "workers",
    "--log-level": "log_level",
}


def expand_refs(node: Any, env: Mapping[str, str], path: str, problems: Problems) -> Any:
    """Replace ``${VAR}`` references in every string of a parsed YAML tree.

    References are expanded after parsing, so a secret with YAML-special characters cannot
    change the structure. A missing variable without a default is a problem at ``path``.
    """
    if isinstance(node, str):
        if "${" not in node:
            return node

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = env.get(name)
            if value is not None and (value != "" or default is None):
                return value
            if default is not None:
                return default
            problems.add(path, f"environment variable {name} is not set")
            return ""

        return _REF.sub(sub, node)
    if isinstance(node, dict):
        return {
            key: expand_refs(value, env, f"{path}.{key}" if path else str(key), problems)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [expand_refs(v, env, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    return node


def apply_overrides(
    raw: dict[str, Any], env: Mapping[str, str], flags: Mapping[str, object], problems: Problems
) -> None:
    """Write environment and flag overrides into ``raw``, recording where each came from."""
    if port := env.get("SERVER_PORT"):
        _set_address(raw, port, "SERVER_PORT", problems)
    for var, (section, key) in ENV_OVERRIDES.items():
        if value := env.get(var):
            _set(raw, section, key, value, var, problems)
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":  # OpenTelemetry's off switch
        _set(raw, "telemetry", "traces_exporter", "none", "OTEL_SDK_DISABLED", problems)
        _set(raw, "telemetry", "metrics", False, "OTEL_SDK_DISABLED", problems)
    for flag, key in FLAG_OVERRIDES.items():
        given = flags.get(flag)
        if given is not None:
            _set(raw, "server", key, given, flag, problems)


# ``":PORT"`` names no host: every interface, as a Go program (and a container) reads it.
EVERY_INTERFACE = "0.0.0.0"


def normalise_server(raw: dict[str, Any], problems: Problems) -> None:
    """Accept ``port: ":8080"`` / ``"0.0.0.0:8080"`` and ``host: localhost`` as users write them.

    ``":8080"`` listens on every interface unless ``server.host`` (or ``--host``) names one.
    """
    server = raw.get("server")
    if not isinstance(server, dict):
        return
    port = server.get("port")
    if isinstance(port, str):
        try:
            host, number = split_address(port)
        except ValueError as exc:
            problems.add("server.port", str(exc))
            server.pop("port")
        else:
            server["port"] = number
            if host == "":
                server.setdefault("host", EVERY_INTERFACE)
            elif host is not None:
                given = server.get("host")
                if given is not None and given != host and "server.host" not in problems.origins:
                    problems.add("server.port", f"names host {host} but server.host is {given}")
                server.setdefault("host", host)
    if server.get("host") == "localhost":
        server["host"] = "127.0.0.1"  # granian binds IP addresses only
    if isinstance(level := server.get("log_level"), str):
        server["log_level"] = level.lower()


def split_address(text: str) -> tuple[str | None, int]:
    """``"8080"``, ``":8080"``, ``"0.0.0.0:8080"`` or ``"[::]:8080"`` -> (host, port): the host
    is None when only a port is given, ``""`` for ``":PORT"`` (every interface)."""
    host, sep, port = text.strip().rpartition(":")
    if not port.strip().isdigit():
        raise ValueError(f'expected a port number, ":PORT" or "HOST:PORT", got {text!r}')
    return host.strip("[] ") if sep else None, int(port)


def _set_address(raw: dict[str, Any], text: str, origin: str, problems: Problems) -> None:
    problems.origins["server.port"] = origin
    try:
        host, port = split_address(text)
    except ValueError as exc:
        problems.add("server.port", str(exc))
        return
    server = _section(raw, "server")
    server["port"] = port
    if host == "":
        if server.get("host") is None:  # a host the file names wins
            server["host"] = EVERY_INTERFACE
            problems.origins["server.host"] = origin
    elif host is not None:
        # The variable's host wins over the file's: it is the more specific instruction.
        server["host"] = host
        problems.origins["server.host"] = origin


def _set(
    raw: dict[str, Any], section: str, key: str, value: object, origin: str, problems: Problems
) -> None:
    if key == "port" and isinstance(value, str):
        _set_address(raw, value, origin, problems)
        return
    _section(raw, section)[key] = value
    problems.origins[f"{section}.{key}"] = origin


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    if raw.get(name) is None:
        raw[name] = {}
    section = raw[name]
    # A section that is not a mapping is reported by the conversion; the override waits.
    return section if isinstance(section, dict) else {}
