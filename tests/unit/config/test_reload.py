"""The main process's reload: validate as check-config does, keep restart-only settings,
publish only a real change, and say what happened."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from relay.config import Config, find_config, read_config
from relay.config.reload import RESTART_NEEDED, Reloader, keep_running, value_at, with_value

GOOD = """
providers: {e: {kind: echo}}
models: {before: {provider: e}}
auth: {mode: none}
database: {url: "postgresql://relay:pw-canary@db/relay"}
"""


class Harness:
    def __init__(self, tmp_path: Path, text: str = GOOD) -> None:
        self.path = tmp_path / "c.yaml"
        self.path.write_text(text)
        source = find_config(str(self.path), {})
        self.published: list[Config] = []
        self.counts: list[str] = []
        self.decided: list[Config] = []
        read = lambda: read_config(source, dict(os.environ))  # noqa: E731
        self.reloader = Reloader(
            source,
            read,
            read(),
            mode_was_set=True,
            decide=self._decide,
            publish=self.published.append,
            counted=self.counts.append,
        )

    def _decide(self, config: Config) -> Config:
        self.decided.append(config)
        return with_value(config, "auth.mode", "keys")


def test_a_valid_edit_is_published_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path)
    before = h.reloader.version
    h.path.write_text(GOOD.replace("before", "after"))
    with caplog.at_level(logging.INFO, "relay"):
        assert h.reloader.reload("file changed") == "applied"
        assert h.reloader.reload("SIGHUP") == "unchanged"
    assert [list(c.models) for c in h.published] == [["after"]]
    assert h.reloader.version.hash != before.hash
    assert h.counts == ["applied", "unchanged"]
    assert f"config reload (file changed): version {h.reloader.version.hash} applied" in caplog.text
    assert "config reload (SIGHUP): no change to apply" in caplog.text


def test_a_broken_file_is_refused_with_every_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    version = h.reloader.version
    h.path.write_text(GOOD.replace("provider: e", "provider: nope") + "server: {port: -1}\n")
    with caplog.at_level(logging.INFO, "relay"):
        assert h.reloader.reload("file changed") == "invalid"
    assert h.published == [] and h.counts == ["invalid"]
    assert h.reloader.version == version
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "is invalid (2 problems); still serving version" in record.getMessage()
    problems = record.relay["problems"]  # type: ignore[attr-defined]
    assert any(p.startswith("models.before") for p in problems)
    assert any(p.startswith("server.port") for p in problems)


def test_restart_only_settings_are_named_kept_and_never_logged_in_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    edited = GOOD.replace("pw-canary@db", "pw-other@db2").replace("mode: none", "mode: keys")
    h.path.write_text(edited.replace("before", "x") + "server: {workers: 3, host: 0.0.0.0}\n")
    with caplog.at_level(logging.INFO, "relay"):
        assert h.reloader.reload("SIGHUP") == "applied"
    [published] = h.published
    assert list(published.models) == ["x"]  # the rest of the edit applies
    assert published.database.url == "postgresql://relay:pw-canary@db/relay"
    assert published.auth.mode == "none"
    assert (published.server.workers, published.server.host) == (1, "127.0.0.1")
    for path in ("database.url", "auth.mode", "server.workers", "server.host"):
        assert f"{path} changed in {h.path}; restart Relay to apply it" in caplog.text, path
    assert "pw-canary" not in caplog.text and "pw-other" not in caplog.text


def test_an_unset_mode_is_decided_again(tmp_path: Path) -> None:
    h = Harness(tmp_path, GOOD.replace("auth: {mode: none}", "auth: {}"))
    h.reloader._mode_was_set = False
    h.path.write_text(GOOD.replace("auth: {mode: none}", "auth: {}").replace("before", "b2"))
    assert h.reloader.reload("SIGHUP") == "applied"
    assert h.published[0].auth.mode == "keys" and len(h.decided) == 1


def test_a_failure_while_reloading_never_escapes(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    def broken(config: Config) -> None:
        raise OSError("disk full")

    h.reloader._publish = broken
    h.path.write_text(GOOD.replace("before", "after"))
    assert h.reloader.reload("file changed") == "failed"
    assert h.counts == ["failed"]


def test_keep_running_paths_exist() -> None:
    config = Config()
    for path in RESTART_NEEDED:
        value_at(config, path)  # a renamed setting would fail here
    kept, changed = keep_running(config, with_value(config, "server.port", 1))
    assert kept == config and changed == ["server.port"]
