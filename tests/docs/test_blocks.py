"""Every config, command and program the README and docs/*.md show works as shown.

The convention, in the Markdown source (an HTML comment on the line before the opening fence,
invisible when rendered; parsed by ``tests/docs/markdown.py``):

* A ```yaml block is a whole config: ``relay check-config`` must accept it, with every ``${VAR}``
  it references (without a ``:-default``) set to a placeholder and no other variable that
  overrides the config. ``<!-- fragment -->`` marks a part of a config that names providers or
  models defined elsewhere: check-config may then report unknown providers, models and kinds,
  and nothing else (a wrong field, type or YAML syntax still fails). A fragment that passes
  whole must drop its marker.
* A ```sh or ```python block must say what it is: ``<!-- runnable -->`` runs it against a real
  gateway on the embedded default config (the offline ``echo`` provider), with
  ``127.0.0.1:8080`` and ``localhost:8080`` pointing at that gateway; a shell block runs under
  ``bash -euo pipefail`` with ``curl`` failing on an HTTP error status, a Python block with this
  interpreter (the test extras: openai, anthropic). ``<!-- not run: WHY -->`` says why one is not
  (a build, a transcript with its output, a file of a package, a config it needs).
* An inline code span with a ``${VAR}`` reference (the providers table's examples) must be
  valid YAML: an unquoted ``${...}`` inside ``{...}`` is not.

So nothing is skipped silently: a new block without the marker its language needs fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from relay.config.env import ENV_OVERRIDES
from tests.docs.markdown import (
    PYTHON,
    ROOT,
    SHELL,
    YAML,
    Block,
    all_blocks,
    documents,
    inline_code,
)
from tests.integration.gateway import Gateway

BLOCKS = all_blocks()
CONFIGS = [b for b in BLOCKS if b.lang in YAML]
RUNNABLE = [b for b in BLOCKS if b.marker == "runnable"]

# References that must be set; ``${VAR:-default}`` needs nothing.
_REQUIRED_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What a fragment may be refused for: a name defined in another part of the config.
_CROSS_REFERENCE = re.compile(r": unknown (provider|model|kind) '[^']*'")
# Variables that would change what a block means (relay.config.env and discovery).
_CONFIG_VARIABLES = {*ENV_OVERRIDES, "RELAY_CONFIG", "RELAY_CONFIG_JSON", "SERVER_PORT"}
_CURL_FAILS_ON_HTTP_ERRORS = 'curl() { command curl --fail-with-body --max-time 30 "$@"; }\n'


def _ids(blocks: list[Block]) -> list[str]:
    return [block.where for block in blocks]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARIABLES}
    env.update(extra)
    return env


def check_config(block: Block, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``relay check-config`` on the block, with a placeholder for each variable it needs."""
    path = tmp_path / "block.yaml"
    path.write_text(block.text, encoding="utf-8")
    placeholders = {
        name: f"docs-placeholder-{name.lower()}" for name in _REQUIRED_REF.findall(block.text)
    }
    return subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(**placeholders),
        cwd=tmp_path,
    )


def test_the_pages_have_blocks() -> None:
    """The extraction itself works: the pages are found and their blocks are."""
    assert {p.name for p in documents()} >= {"README.md", "providers.md", "notes.md"}
    assert len(CONFIGS) >= 10 and len(RUNNABLE) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_every_block_is_classified(block: Block) -> None:
    if block.lang in SHELL | PYTHON:
        assert block.marker in ("runnable", "not run"), (
            f"{block.where}: a ```{block.lang} block needs <!-- runnable --> or "
            "<!-- not run: WHY --> on the line before it"
        )
        if block.marker == "not run":
            assert block.why, f"{block.where}: <!-- not run: WHY --> must say why"
    elif block.lang in YAML:
        assert block.marker in (None, "fragment"), (
            f"{block.where}: a yaml block is a whole config or a <!-- fragment -->"
        )
    else:
        assert block.marker is None, f"{block.where}: ```{block.lang} blocks take no marker"


@pytest.mark.parametrize("block", CONFIGS, ids=_ids(CONFIGS))
def test_config_block_passes_check_config(block: Block, tmp_path: Path) -> None:
    result = check_config(block, tmp_path)
    if block.marker != "fragment":
        assert result.returncode == 0, f"{block.where}:\n{block.text}\n{result.stderr}"
        assert result.stdout.startswith(f"{tmp_path / 'block.yaml'}: ok")
        return
    assert result.returncode == 1, (
        f"{block.where} passes check-config as a whole config: drop <!-- fragment -->"
    )
    problems = result.stderr.splitlines()[1:]
    others = [line for line in problems if not _CROSS_REFERENCE.search(line)]
    assert problems and not others, f"{block.where}:\n{block.text}\n{result.stderr}"


SPANS = [
    (f"{path.relative_to(ROOT)}:{line}", span)
    for path in documents()
    for line, span in inline_code(path)
    if "${" in span and span.lstrip().startswith(("{", "["))
]


@pytest.mark.parametrize(("where", "span"), SPANS, ids=[where for where, _ in SPANS])
def test_inline_config_with_a_reference_is_valid_yaml(where: str, span: str) -> None:
    try:
        yaml.safe_load(span)
    except yaml.YAMLError as exc:
        pytest.fail(f"{where}: `{span}` is not valid YAML (quote the ${{...}}): {exc}")


@pytest.fixture(scope="module")
def echo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """``relay serve`` on the embedded default, as the README's first run starts it."""
    gateway = Gateway(None, tmp_path_factory.mktemp("docs"), env=_clean_env())
    yield gateway
    gateway.stop()


@pytest.mark.integration
@pytest.mark.parametrize("block", RUNNABLE, ids=_ids(RUNNABLE))
def test_runnable_block_runs(block: Block, echo_gateway: Gateway, tmp_path: Path) -> None:
    address = f"127.0.0.1:{echo_gateway.port}"
    text = block.text.replace("127.0.0.1:8080", address).replace("localhost:8080", address)
    assert address in text, f"{block.where}: a runnable block talks to the gateway on :8080"
    if block.lang in SHELL:
        command = ["bash", "-euo", "pipefail", "-c", _CURL_FAILS_ON_HTTP_ERRORS + text]
    else:
        assert block.lang in PYTHON, f"{block.where}: only sh and python blocks run"
        command = [sys.executable, "-c", text]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=_clean_env(), cwd=tmp_path
    )
    assert result.returncode == 0, (
        f"{block.where} failed ({result.returncode}):\n{text}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
        f"gateway:\n{echo_gateway.logs()[-3000:]}"
    )
    assert result.stdout.strip(), f"{block.where} printed nothing"
