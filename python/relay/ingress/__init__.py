"""Ingress: turning an RSGI request into an :class:`~relay.exchange.Exchange`."""
