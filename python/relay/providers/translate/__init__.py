"""Translators between wire formats: requests, JSON answers and streams, one direction per
module. ``openai_to_anthropic`` serves an OpenAI client from an Anthropic provider;
``anthropic_to_openai`` serves an Anthropic client from an OpenAI-shaped provider."""
