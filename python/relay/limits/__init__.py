"""Limits and budgets: what a request may take, decided before the upstream call and settled
after the last byte (``rule.py`` is the contract; the store is ``relay.storage``)."""
