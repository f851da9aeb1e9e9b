"""The ``cache`` section: YAML's ``off`` read as the mode it names, and its ranges checked."""

from __future__ import annotations

import math
from typing import Any

from relay.config.model import Config
from relay.config.problems import Problems

# Fields that never change an answer, always left out of the key: naming one is pointless but
# harmless. Fields that always change it may not be ignored.
_NEVER_IGNORED = frozenset({"model", "messages", "prompt", "input", "system"})


def normalise_cache(raw: dict[str, Any]) -> None:
    """``mode: off`` is the boolean false to YAML 1.1 (and ``on`` true): read ``off``/false as
    the mode ``off``, in the section and in every model's ``cache``."""
    _mode_of(raw.get("cache"))
    models = raw.get("models")
    if isinstance(models, dict):
        for model in models.values():
            if isinstance(model, dict):
                _mode_of(model.get("cache"))


def _mode_of(section: Any) -> None:
    if isinstance(section, dict) and section.get("mode") is False:
        section["mode"] = "off"


def check_cache(config: Config, problems: Problems) -> None:
    """Append the problems of the ``cache`` section and of every model's ``cache``."""
    cache = config.cache
    if not 0 < cache.ttl_s < math.inf:
        problems.add("cache.ttl_s", f"expected more than 0 seconds, got {cache.ttl_s}")
    if cache.max_bytes < 1024 * 1024:
        problems.add("cache.max_bytes", f"expected at least 1048576 (1 MiB), got {cache.max_bytes}")
    if not 0 < cache.redis_timeout_ms < math.inf:
        problems.add(
            "cache.redis_timeout_ms", f"expected more than 0, got {cache.redis_timeout_ms}"
        )
    for i, name in enumerate(cache.ignore_fields):
        if name in _NEVER_IGNORED or not name:
            problems.add(
                f"cache.ignore_fields[{i}]",
                f"{name!r} changes the answer and cannot be ignored",
            )
    for model_name, model in config.models.items():
        override = model.cache
        if override is not None and override.ttl_s is not None and not override.ttl_s > 0:
            problems.add(
                f"models.{model_name}.cache.ttl_s",
                f"expected more than 0 seconds, got {override.ttl_s}",
            )
