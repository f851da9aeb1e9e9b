"""Every other /v1 route, forwarded to a configured provider with bodies streamed both ways."""
