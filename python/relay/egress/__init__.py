"""Egress: response headers and the JSON/SSE writers."""
