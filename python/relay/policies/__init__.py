"""Prompt policies (``policies:``): redaction, rewriting, guardrails, content logging and
plugins, applied in the order configured (global ``middleware``, then the model's, then the
tenant's). The contract every kind implements is in ``relay.policies.base``."""
