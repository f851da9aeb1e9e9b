"""Inbound APIs: each dialect decodes its requests, renders its errors and frames its streams."""

from relay.dialects.anthropic import ANTHROPIC_DIALECTS
from relay.dialects.base import Dialect
from relay.dialects.openai import OPENAI_DIALECTS
from relay.dialects.responses import RESPONSES_DIALECTS

__all__ = ["ANTHROPIC_DIALECTS", "OPENAI_DIALECTS", "RESPONSES_DIALECTS", "Dialect"]
