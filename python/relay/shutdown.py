"""Learn when granian begins a graceful shutdown, so in-flight work can drain to a deadline.

On SIGTERM granian stops accepting and waits for open connections without a bound of its own
(the main process kills a worker after ``workers_kill_timeout``). The gateway wants more: turn
``/readyz`` to 503 at once, give requests ``server.drain_timeout_s``, then end what is left with an
explicit error. Granian's worker learns of shutdown through the loop signal handlers that
``granian._signals.set_loop_signals`` installs (they set the worker's shutdown signal object); we
wrap that function (the worker imports it at call time, after our app module is loaded) and put
a handler in front that tells the app, then sets granian's signal as before.

That function is private, so the hook is installed only on the granian versions it was tested
with (``TESTED_GRANIAN``, kept in step with the pin in pyproject.toml). Elsewhere, or when the
function is gone, a warning names the version and draining still happens in ``__rsgi_del__``,
only later (after granian stopped accepting and the connections closed).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

log = logging.getLogger("relay")
_listeners: list[Callable[[], object]] = []
# Granian versions the hook was tested with: [low, high), as in pyproject.toml.
TESTED_GRANIAN = ((2, 0), (2, 9))
_installed: bool | None = None


def install_granian_hook() -> bool:
    """Wrap granian's worker signal setup once per process; True when the hook is in place.

    Logs once per process: that the hook is installed, or a warning naming the granian version
    when it cannot be.
    """
    global _installed
    if _installed is None:
        reason = _install()
        _installed = reason is None
        if reason is None:
            log.info("graceful drain hook installed (granian %s)", _granian_version())
        else:
            log.warning(
                "graceful drain hook not installed (granian %s: %s); in-flight requests drain "
                "only once granian has stopped the worker",
                _granian_version(),
                reason,
            )
    return _installed


def on_shutdown(listener: Callable[[], object]) -> None:
    """Call ``listener`` on the worker's loop when a graceful shutdown begins."""
    _listeners.append(listener)


def _granian_version() -> str:
    try:
        import granian
    except ImportError:
        return "not installed"
    return str(getattr(granian, "__version__", "unknown"))


def _tested(version: str) -> bool:
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    low, high = TESTED_GRANIAN
    return low <= major_minor < high


def _install() -> str | None:
    """Install the wrapper; None on success, else why not."""
    version = _granian_version()
    if not _tested(version):
        low, high = TESTED_GRANIAN
        return f"only tested with >={low[0]}.{low[1]},<{high[0]}.{high[1]}"
    try:
        import granian._signals as signals
    except ImportError:
        return "granian._signals is gone"
    original: Callable[[asyncio.AbstractEventLoop], Any] | None = getattr(
        signals, "set_loop_signals", None
    )
    if not callable(original):
        return "granian._signals.set_loop_signals is gone"
    if getattr(original, "_relay_hook", False):
        return None

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        event = original(loop)

        # Granian's own handler only sets ``event``; ours tells the app first, then does that.
        def handler() -> None:
            _notify()
            event.set()

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):
            log.warning("graceful drain hook not active on this loop; draining at worker exit only")
        return event

    set_loop_signals._relay_hook = True  # type: ignore[attr-defined]
    signals.set_loop_signals = set_loop_signals
    return None


def _notify() -> None:
    for listener in _listeners:
        try:
            listener()
        except Exception:
            log.exception("shutdown listener failed")
