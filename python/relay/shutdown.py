"""Learn when granian begins a graceful shutdown, so in-flight work can drain to a deadline.

On SIGTERM granian stops accepting and waits for open connections without a bound of its own
(the main process kills a worker after ``workers_kill_timeout``). The gateway wants more: turn
``/readyz`` to 503 at once, give requests ``server.drain_timeout_s``, then end what is left with an
explicit error. Granian's worker learns of shutdown through the loop signal handlers that
``granian._signals.set_loop_signals`` installs (they set the worker's shutdown signal object); we
wrap that function (the worker imports it at call time, after our app module is loaded) and put
a handler in front that tells the app, then sets granian's signal as before. If granian
changes and the hook cannot be
installed, draining still happens in ``__rsgi_del__``, only later.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

log = logging.getLogger("relay")
_listeners: list[Callable[[], object]] = []


def install_granian_hook() -> bool:
    """Wrap granian's worker signal setup once per process; True when the hook is in place."""
    try:
        import granian._signals as signals
    except ImportError:
        return False
    original: Callable[[asyncio.AbstractEventLoop], Any] = signals.set_loop_signals
    if getattr(original, "_relay_hook", False):
        return True

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
            log.warning("graceful drain hook not installed; draining at worker exit only")
        return event

    set_loop_signals._relay_hook = True  # type: ignore[attr-defined]
    signals.set_loop_signals = set_loop_signals
    return True


def on_shutdown(listener: Callable[[], object]) -> None:
    """Call ``listener`` on the worker's loop when a graceful shutdown begins."""
    _listeners.append(listener)


def _notify() -> None:
    for listener in _listeners:
        try:
            listener()
        except Exception:
            log.exception("shutdown listener failed")
