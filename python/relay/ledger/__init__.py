"""The database: one schema on SQLite or PostgreSQL, migrations, and the request ledger."""
