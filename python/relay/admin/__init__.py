"""The admin JSON API (tenants, keys, users, usage, ledger, audit log) and its CLI."""
