"""``${VAR}`` / ``${VAR:-default}`` references and the environment overrides users know."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def expand_refs(node: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
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
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _REF.sub(sub, node)
    if isinstance(node, dict):
        return {
            key: expand_refs(value, env, join_path(path, str(key)), problems)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [expand_refs(v, env, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    return node


def join_path(prefix: str, key: str) -> str:
    """Join a dotted config path."""
    return f"{prefix}.{key}" if prefix else key


def apply_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``SERVER_PORT``, ``REDIS_ADDRESS`` and ``REDIS_PASSWORD`` on the raw tree."""
    if port := env.get("SERVER_PORT"):
        raw.setdefault("server", {})
        if isinstance(raw["server"], dict):
            raw["server"]["port"] = port
    for var, key in (("REDIS_ADDRESS", "address"), ("REDIS_PASSWORD", "password")):
        if value := env.get(var):
            raw.setdefault("redis", {})
            if isinstance(raw["redis"], dict):
                raw["redis"][key] = value
    return raw
