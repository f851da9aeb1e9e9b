"""Which configuration is read, and how start-up names it."""

from __future__ import annotations

from pathlib import Path

from relay.config import find_config


def test_order_flag_env_working_directory_embedded(tmp_path: Path) -> None:
    assert find_config(None, {}, tmp_path).path is None
    (tmp_path / "config.yaml").write_text("x")
    assert find_config(None, {}, tmp_path).path == tmp_path / "config.yaml"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.yaml").write_text("x")
    found = find_config(None, {}, tmp_path)
    assert found.path == tmp_path / "configs" / "config.yaml"
    assert found.describe() == f"{found.path} (found in the working directory)"
    env = find_config(None, {"RELAY_CONFIG": "/etc/relay.yaml"}, tmp_path)
    assert env.describe() == "/etc/relay.yaml (from RELAY_CONFIG)"
    assert (
        find_config("a.yaml", {"RELAY_CONFIG": "b"}, tmp_path).describe()
        == "a.yaml (from --config)"
    )


def test_a_directory_named_config_yaml_is_not_a_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").mkdir()
    assert find_config(None, {}, tmp_path).name == "<embedded default>"


def test_the_embedded_default_says_what_was_looked_for(tmp_path: Path) -> None:
    assert find_config(None, {}, tmp_path).describe() == (
        "embedded default (no --config, no RELAY_CONFIG, no ./configs/config.yaml or ./config.yaml)"
    )
