"""The configuration handed to workers comes back exactly as the main process validated it,
through a file only this user can read, never through the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import parse_config
from relay.config.handoff import HANDOFF_VAR, publish, received, with_session_secret, withdraw

TEXT = """
server: {port: 9001, log_level: debug}
providers:
  o: {kind: openai, base_url: "http://h/v1", api_key: "${KEY}", headers: {X-A: b}, timeouts: {read_s: 3}}
models:
  m: {targets: [{provider: o, model: up}], pricing: {input: 1.5, output: 2, cached: 0.5}}
"""


@pytest.fixture
def environ() -> Iterator[dict[str, str]]:
    env: dict[str, str] = {}
    yield env
    withdraw(env)


def test_round_trip_is_exact(environ: dict[str, str], tmp_path: Path) -> None:
    config = parse_config(TEXT, "c.yaml", {"KEY": "sk-1"})
    path = publish(config, environ, parent=str(tmp_path))
    assert received(environ) == config
    # Expanded once, in the main process: a worker does not need the variable. The key is
    # in the file, the environment only says where it is.
    assert '"api_key":"sk-1"' in path.read_text()
    assert environ == {HANDOFF_VAR: str(path)}
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    # SIGHUP: the file is replaced in place, where the workers look.
    changed = parse_config(TEXT, "c.yaml", {"KEY": "sk-2"})
    assert publish(changed, environ, parent=str(tmp_path)) == path
    assert received(environ) == changed
    withdraw(environ)
    assert not path.parent.exists() and environ == {}


def test_nothing_published_means_none() -> None:
    assert received({}) is None


def test_a_killed_gateways_file_is_removed_by_the_next_start(
    environ: dict[str, str], tmp_path: Path
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"relay-handoff-{int(dead.stdout)}-abc"
    stale.mkdir(mode=0o700)
    (stale / "config.json").write_text("{}")
    alive = tmp_path / f"relay-handoff-{os.getppid()}-def"  # a gateway still running
    alive.mkdir(mode=0o700)
    publish(parse_config(TEXT, "c.yaml", {"KEY": "k"}), environ, parent=str(tmp_path))
    assert not stale.exists() and alive.exists()


def test_one_dashboard_session_secret_per_start_when_none_is_configured() -> None:
    bare = parse_config("providers: {}\n", "c.yaml", {})
    first, again = with_session_secret(bare), with_session_secret(bare)
    # Every worker and every reload of this start gets the same one.
    assert first.ui.session_secret and first.ui.session_secret == again.ui.session_secret
    assert len(first.ui.session_secret) >= 32
    # A configured secret, or an admin key to derive one from, is left alone.
    own = parse_config("ui: {session_secret: mine-0123456789abcdef}\n", "c.yaml", {})
    assert with_session_secret(own).ui.session_secret == "mine-0123456789abcdef"
    keyed = parse_config("auth: {admin_key: admin-0123456789abcdef}\n", "c.yaml", {})
    assert with_session_secret(keyed).ui.session_secret is None
