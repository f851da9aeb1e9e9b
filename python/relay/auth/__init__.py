"""Auth: who is calling. Virtual keys and tenants arrive with their own work."""
