"""Fixtures: the real gateway process, and the fake OpenAI provider as a real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.gateway import Gateway


@pytest.fixture(scope="module")
def echo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway on its embedded default config (no --config): the offline echo provider."""
    gateway = Gateway(None, tmp_path_factory.mktemp("echo"))
    yield gateway
    gateway.stop()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
