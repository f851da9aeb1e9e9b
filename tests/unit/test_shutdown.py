"""The drain hook wraps a private granian function: only on tested versions, and says so once."""

from __future__ import annotations

import logging

import granian
import granian._signals
import pytest

from relay import shutdown


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutdown, "_installed", None)
    monkeypatch.setattr(granian._signals, "set_loop_signals", granian._signals.set_loop_signals)
    # the relay logger does not propagate once configured; caplog listens at the root
    monkeypatch.setattr(logging.getLogger("relay"), "propagate", True)


@pytest.mark.usefixtures("fresh")
def test_installed_on_the_tested_version_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relay")
    assert shutdown.install_granian_hook() and shutdown.install_granian_hook()
    assert granian._signals.set_loop_signals._relay_hook  # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records] == [
        f"graceful drain hook installed (granian {granian.__version__})"
    ]


@pytest.mark.usefixtures("fresh")
def test_an_untested_granian_gets_a_warning_naming_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(granian, "__version__", "3.0.1")
    original = granian._signals.set_loop_signals
    assert shutdown.install_granian_hook() is False
    assert granian._signals.set_loop_signals is original
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "graceful drain hook not installed (granian 3.0.1: only tested with >=2.0,<2.9)"
    )


@pytest.mark.usefixtures("fresh")
def test_a_missing_function_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(granian._signals, "set_loop_signals")
    assert shutdown.install_granian_hook() is False
    assert "granian._signals.set_loop_signals is gone" in caplog.records[0].getMessage()
