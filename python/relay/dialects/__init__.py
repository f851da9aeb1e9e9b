"""Inbound APIs: each dialect decodes its requests, renders its errors and frames its streams."""

from relay.dialects.base import Dialect
from relay.dialects.openai import OPENAI_DIALECTS

__all__ = ["OPENAI_DIALECTS", "Dialect"]
