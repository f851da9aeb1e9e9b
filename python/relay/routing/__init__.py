"""Routing: public model names to deployments."""
