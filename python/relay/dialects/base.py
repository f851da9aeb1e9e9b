"""What an inbound API (a dialect) owns; the contract itself lives beside the exchange that
carries it (:class:`relay.exchange.Dialect`), so the two do not import each other."""

from relay.exchange import Dialect

__all__ = ["Dialect"]
