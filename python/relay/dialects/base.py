"""What an inbound API (a dialect) owns; the contract itself lives with the others in
:mod:`relay.stage` (:class:`relay.stage.Dialect`)."""

from relay.stage import Dialect

__all__ = ["Dialect"]
