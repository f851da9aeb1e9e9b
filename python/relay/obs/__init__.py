"""Observability: logs now; metrics and traces arrive with their own work."""
