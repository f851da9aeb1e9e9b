"""Shared services: a throwaway PostgreSQL cluster and a database URL per backend; a
redis-server per test module."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.postgres import PostgresServer
from tests.services.redis import RedisServer

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole run (tests get their own database in it)."""
    server = PostgresServer()
    yield server
    server.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relay.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"relay_{next(_names)}_{id(request) % 100000}")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server per test module (tests keep to their own keys, or flush)."""
    server = RedisServer()
    yield server
    server.destroy()
