"""Shared state the policy stages keep across requests, workers and replicas: the contracts
(:mod:`relay.storage.limits`) and their backends (process-shared memory, Redis)."""
