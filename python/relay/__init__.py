"""Relay: a self-hosted, OpenAI-compatible LLM gateway with a Rust hot path."""

__version__ = "0.1.0"
