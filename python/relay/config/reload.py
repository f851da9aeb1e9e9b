"""Hot reload in ``relay serve``'s main process: read the file again, validate it as
``check-config`` and ``serve`` do, keep what only a restart can change, and publish the result
to the workers (:mod:`relay.config.handoff`), which swap it in without a restart
(:mod:`relay.live`).

A broken file is refused whole: the running configuration stays, every problem is logged by
path, and the refusal is counted. A reload that changes a setting only a restart can apply
(the listening address, the worker count, the database, ``auth.mode``...) names each one in
the log and keeps its running value, so workers never serve half of a change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from relay.config.discover import ConfigSource
from relay.config.load import ConfigError
from relay.config.model import Config
from relay.config.redact import redact_value
from relay.config.version import ConfigVersion

log = logging.getLogger("relay")

Outcome = Literal["applied", "unchanged", "invalid", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("applied", "unchanged", "invalid", "failed")

# Settings a running gateway cannot change: the listening socket and the worker count belong
# to granian's main process; the database, Redis, the connection pool, the metrics' and the
# tracer's set-up are made once per worker and hold connections, files and threads that
# in-flight requests use. (auth.mode is handled on its own: see Reloader._mode.)
RESTART_NEEDED: tuple[str, ...] = (
    "server.host",
    "server.port",
    "server.workers",
    "server.drain_timeout_s",
    "server.upstream_connections_per_host",
    "server.max_upstream_body_bytes",
    "server.upstream_client",
    "database",
    "auth.key_refresh_s",
    "redis",
    "limits.on_redis_failure",
    "limits.replicas",
    "metrics",
    "telemetry",
)


def value_at(config: Any, path: str) -> Any:
    """The setting at a dotted ``path`` of ``config``."""
    for name in path.split("."):
        config = getattr(config, name)
    return config


def with_value(config: Config, path: str, value: Any) -> Config:
    """``config`` with the setting at ``path`` replaced."""
    return _replaced(config, path, value)  # type: ignore[no-any-return]


def _replaced(struct: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    inner = _replaced(getattr(struct, head), rest, value) if rest else value
    return msgspec.structs.replace(struct, **{head: inner})


def keep_running(running: Config, fresh: Config) -> tuple[Config, list[str]]:
    """``fresh`` with every :data:`RESTART_NEEDED` setting as ``running`` has it, and the
    paths of the settings (the leaves: ``database.url``) whose value the file changed."""
    changed: list[str] = []
    for path in RESTART_NEEDED:
        kept = value_at(running, path)
        new = value_at(fresh, path)
        if new != kept:
            changed.extend(_leaves_changed(path, kept, new))
            fresh = with_value(fresh, path, kept)
    return fresh, changed


def _leaves_changed(path: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, msgspec.Struct) and type(old) is type(new):
        found: list[str] = []
        for name in old.__struct_fields__:
            found += _leaves_changed(f"{path}.{name}", getattr(old, name), getattr(new, name))
        return found
    return [path] if old != new else []


def shown(path: str, value: Any) -> str:
    """A running setting as a log line may show it (secrets and URL passwords redacted)."""
    return repr(redact_value(path.rpartition(".")[2], value))


class Reloader:
    """Reads, validates and publishes the configuration; one reload at a time.

    ``read`` is the same function ``serve`` started with (file, environment, flags);
    ``decide`` settles an unset ``auth.mode`` as at start (it may raise); ``publish`` hands the
    configuration to the workers; ``counted`` counts each outcome.
    """

    def __init__(
        self,
        source: ConfigSource,
        read: Callable[[], Config],
        running: Config,
        *,
        mode_was_set: bool,
        decide: Callable[[Config], Config],
        publish: Callable[[Config], object],
        counted: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.source = source
        self._read = read
        self.running = running
        self._data = msgspec.json.encode(running)
        self.version = ConfigVersion.of_bytes(self._data)
        self._mode_was_set = mode_was_set
        self._decide = decide
        self._publish = publish
        self._counted = counted
        self._lock = threading.Lock()

    def reload(self, why: str) -> Outcome:
        """Reload now (``why``: ``file changed``, ``SIGHUP``...); never raises."""
        with self._lock:
            try:
                outcome = self._reload(why)
            except Exception:  # the gateway keeps serving whatever goes wrong here
                log.exception(
                    "config reload (%s): failed; still serving version %s", why, self.version.hash
                )
                outcome = "failed"
        if self._counted is not None:
            self._counted(outcome)
        return outcome

    def _reload(self, why: str) -> Outcome:
        name = self.source.name
        try:
            fresh = self._read()
        except ConfigError as exc:
            log.error(
                "config reload (%s): %s is invalid (%d problem%s); still serving version %s",
                why,
                name,
                len(exc.problems),
                "" if len(exc.problems) == 1 else "s",
                self.version.hash,
                extra={"relay": {"problems": exc.problems}},
            )
            return "invalid"
        fresh, changed = keep_running(self.running, fresh)
        fresh = self._mode(why, fresh, changed)
        for path in changed:
            log.warning(
                "config reload (%s): %s changed in %s; restart Relay to apply it (still %s)",
                why,
                path,
                name,
                shown(path, value_at(self.running, path)),
            )
        data = msgspec.json.encode(fresh)
        if data == self._data:
            log.info("config reload (%s): no change to apply (version %s)", why, self.version.hash)
            return "unchanged"
        self._publish(fresh)
        self.running, self._data = fresh, data
        self.version = ConfigVersion.of_bytes(data)
        log.info(
            "config reload (%s): version %s applied from %s (models: %s)",
            why,
            self.version.hash,
            name,
            ", ".join(fresh.models) or "none",
            extra={"relay": {"config_version": self.version.hash}},
        )
        return "applied"

    def _mode(self, why: str, fresh: Config, changed: list[str]) -> Config:
        """``auth.mode``: a mode the file sets needs a restart to change; an unset one is
        decided again, as at start (keys created since make a gateway open to all check them)."""
        running = self.running.auth.mode
        if fresh.auth.mode is not None or self._mode_was_set:
            if fresh.auth.mode != running:
                changed.append("auth.mode")
            return with_value(fresh, "auth.mode", running)
        try:
            decided = self._decide(fresh)
        except Exception as exc:
            log.error(
                "config reload (%s): auth.mode is not set and could not be decided again (%s); "
                "keeping %s",
                why,
                exc,
                running,
            )
            return with_value(fresh, "auth.mode", running)
        if decided.auth.mode != running:
            log.warning(
                "config reload (%s): auth.mode (not set) is now %s, was %s",
                why,
                decided.auth.mode,
                running,
            )
        return decided
