"""Accounting: usage and cost of every finished exchange."""
