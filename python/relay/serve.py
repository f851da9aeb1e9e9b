"""``relay serve`` in the main process: check the address, say what is served, hand the validated
configuration to the workers, and run granian.

Workers never read the YAML file (see :mod:`relay.config.handoff`: a file only the gateway's
user can read, removed when the main process exits). The main process also makes the shared
memory that holds the limits' cells for every worker (:mod:`relay.storage.memory`) and the
directory of the metrics' files (:mod:`relay.obs.prom_files`), removed when it exits.

Hot reload: the main process watches the config file (:mod:`relay.config.watch`) and takes
SIGHUP (``relay reload`` sends it, to the pid in the pid file) as the same request; it reads
and validates the file again and publishes it (:mod:`relay.config.reload`), and each worker
swaps it in without a restart (:mod:`relay.live`). A broken file is logged, counted and kept
out: the running configuration stays, so a broken file never stops a running gateway.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from granian import Granian
from granian import __version__ as granian_version
from granian.constants import Interfaces, Loops
from granian.log import LogLevels

from relay import __version__
from relay.auth.mode import AuthModeUnknown, resolve_auth, with_mode
from relay.cache.board import create_board, withdraw_board
from relay.config import Config, ConfigSource
from relay.config.handoff import publish, with_session_secret, withdraw
from relay.config.notices import summary, warnings
from relay.config.reload import Reloader
from relay.config.watch import ReloadQueue, watch_file
from relay.limits.budget_rebuild import rebuild_at_start
from relay.listen import CannotListen, check_listen
from relay.native import NativeError
from relay.obs.log import configure_logging, granian_log_config
from relay.obs.metrics import config_reloads
from relay.obs.prom_files import make_dir, remove_dir
from relay.pidfile import remove_stale
from relay.storage.memory import SharedMemoryStore, create_served, withdraw_served

log = logging.getLogger("relay")


def serve(
    config: Config,
    source: ConfigSource,
    *,
    reuse_port: bool,
    reload: Callable[[], Config],
    pid_file: Path | None = None,
    stale_pid_file: bool = False,
) -> int:
    """Serve ``config`` until SIGTERM or SIGINT; ``reload`` re-reads the source when the file
    changes and on SIGHUP; ``pid_file`` (None: none) is where ``relay reload`` finds us
    (``stale_pid_file``: the default path, where a killed gateway's file is removed)."""
    server = config.server
    try:
        check_listen(server.host, server.port, reuse_port=reuse_port)
    except CannotListen as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    if pid_file is not None and stale_pid_file:
        remove_stale(pid_file)
        if not os.access(pid_file.parent, os.W_OK):  # a read-only file system, say
            print(
                f"relay: cannot write the pid file in {pid_file.parent}: `relay reload` will "
                "not find this gateway (SIGHUP and edits of the file still reload)",
                file=sys.stderr,
            )
            pid_file = None
    configure_logging(server.log_level, server.log_format)
    # Until granian installs its own handlers: SIGTERM unwinds (SIGINT already does), so the
    # clean-up below runs whenever the gateway is asked to stop.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    metrics_dir = None
    try:
        # The limits' cells, shared by every worker: made before granian starts them, found
        # by name by each (first start, respawn or SIGHUP restart alike), so they outlive
        # any one worker and go with the gateway.
        shared = _share_limits()
        _share_cache_purges()
        # Likewise the metrics' files: every worker writes its own, a scrape sums them all
        # (made even with metrics off: a SIGHUP may turn them on).
        metrics_dir = make_dir()
        if shared is not None:
            # Budgets spent before a restart stay spent: their cells are charged from the
            # ledger before any worker takes a request.
            rebuild_at_start(config, shared)
        return _serve(config, source, reload, pid_file)
    finally:
        # Granian returns (or raises SystemExit) after SIGTERM or SIGINT: the file with the
        # provider keys, the shared memory and the metrics' files go with the gateway.
        withdraw_served()
        withdraw_board()
        withdraw()
        remove_dir(metrics_dir)


def _share_limits() -> SharedMemoryStore | None:
    """Make the shared memory of the limits; without it (no ``/dev/shm`` in some sandboxes)
    the gateway still serves, and says so."""
    try:
        return create_served()
    except (OSError, NativeError) as exc:
        log.warning("shared memory for limits unavailable (%s): workers cannot share limits", exc)
        return None


def _share_cache_purges() -> None:
    """The page through which a purge of the cache reaches every worker's memory (made
    whatever the configuration: a reload may turn the cache on)."""
    try:
        create_board()
    except OSError as exc:
        log.warning(
            "shared memory for cache purges unavailable (%s): a purge reaches one worker", exc
        )


class _SlicedEvent(threading.Event):
    """An Event whose untimed wait wakes every 0.2 s, so pending signal handlers run."""

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            return super().wait(timeout)
        while not super().wait(0.2):
            pass
        return True


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve(
    config: Config, source: ConfigSource, reload: Callable[[], Config], pid_file: Path | None
) -> int:
    """Say what is served, then run granian until it stops."""
    mode_was_set = config.auth.mode is not None
    server = config.server
    log.info(
        "Relay %s (granian %s, Python %s)", __version__, granian_version, platform.python_version()
    )
    log.info("config: %s", source.describe())
    try:
        # auth.mode unset: keys when an admin key is set or the database holds active keys.
        auth = resolve_auth(config)
    except AuthModeUnknown as exc:
        print(
            "relay: auth.mode is not set and the database could not be asked whether it holds "
            f"gateway keys ({exc}); set auth.mode, or make the database reachable",
            file=sys.stderr,
        )
        return 1
    config = with_session_secret(with_mode(config, auth))
    publish(config)
    for line in summary(config, auth.reason):
        log.info("%s", line)
    for line in [*warnings(config), *auth.warnings]:
        log.warning("%s", line)

    reloader = Reloader(
        source,
        # A reloaded config carries this start's session secret too, so its version hash is
        # the one the workers serve and an unchanged file reloads as unchanged.
        lambda: with_session_secret(reload()),
        config,
        mode_was_set=mode_was_set,
        decide=_decide_mode,
        publish=_publish_reloaded,
        counted=config_reloads(),
    )
    log.info("config version %s", reloader.version.hash)
    reloads = ReloadQueue(reloader.reload)
    granian = Granian(
        "relay.live:create_app",
        factory=True,
        interface=Interfaces.RSGI,
        loop=Loops.uvloop,
        address=server.host,
        port=server.port,
        workers=server.workers,
        log_level=LogLevels(server.log_level),
        log_access=False,  # the gateway's own access line replaces granian's
        # granian's lines go through the gateway's handler, in its format
        log_dictconfig=granian_log_config(server.log_format, server.log_level),
        respawn_failed_workers=True,
        workers_kill_timeout=int(server.drain_timeout_s) + 5,
        pid_file=pid_file,
    )
    # granian's own SIGHUP handler (installed as it starts) restarts every worker; ours asks
    # for the same reload as a changed file: the workers swap the configuration in.
    granian.on_startup(lambda: _reload_on_sighup(reloads))
    # granian's main loop waits on this Event with no timeout. CPython runs a signal's Python
    # handler in the main thread only, between bytecodes; when the kernel hands SIGINT or
    # SIGTERM to another thread of this process (granian's worker watchers), the main
    # thread's untimed wait is never interrupted and the gateway never stops (seen about one
    # start in three with spawned workers). Waiting in slices lets the handler run.
    if isinstance(getattr(granian, "main_loop_interrupt", None), threading.Event):
        granian.main_loop_interrupt = _SlicedEvent()
    stop_watching = threading.Event()
    reloads.start()
    if source.path is not None:
        watch_file(source.path, lambda: reloads.request("file changed"), stop_watching)
        log.info("config: watching %s; an edit is applied without a restart", source.path)
    try:
        granian.serve()
    except RuntimeError as exc:
        # Lost a race for the port after the check: granian's message is one line, then a
        # Rust backtrace the user does not need.
        if "os error" not in str(exc):
            raise
        print(
            f"relay: cannot listen on {server.host}:{server.port}: {str(exc).splitlines()[0]}",
            file=sys.stderr,
        )
        return 1
    finally:
        stop_watching.set()
        reloads.stop()
    return 0


def _reload_on_sighup(reloads: ReloadQueue) -> None:
    """Replace granian's SIGHUP handler (granian calls this once its handlers are set)."""
    signal.signal(signal.SIGHUP, lambda signum, frame: reloads.request("SIGHUP"))


def _publish_reloaded(config: Config) -> None:
    """Hand a reloaded configuration to the workers; this process logs at its level too."""
    publish(config)
    configure_logging(config.server.log_level, config.server.log_format)


def _decide_mode(config: Config) -> Config:
    """An unset ``auth.mode`` decided as at start (raises AuthModeUnknown)."""
    auth = resolve_auth(config)
    for line in auth.warnings:
        log.warning("%s", line)
    return with_mode(config, auth)
