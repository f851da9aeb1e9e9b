"""tests/deploy: the image, compose file, Kubernetes manifests and Helm chart.

The container tests (marker ``container``) run an image that ``scripts/container.sh test``
(``make container-test``, called by CI) has just built with podman; it sets
``RELAY_TEST_IMAGE``. A plain ``pytest`` run does not build images: it deselects them (pytest
reports them as deselected, not as passed or skipped). Every other test here is plain Python.
"""

from __future__ import annotations

import os

import pytest

IMAGE_VAR = "RELAY_TEST_IMAGE"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"container: runs the built image with podman (needs ${IMAGE_VAR})"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(IMAGE_VAR):
        return
    chosen = [item for item in items if item.get_closest_marker("container") is None]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item.get_closest_marker("container") is not None]
        )
        items[:] = chosen
