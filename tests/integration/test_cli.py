"""The command line without a running server: flags, help, and check-config and serve agreeing.

Every broken config here is listed completely by ``check-config`` and refused by ``serve`` with
the same words, before anything listens.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from relay import __version__
from relay.config.model import ServerConfig
from tests.integration.gateway import free_port

ROOT = Path(__file__).resolve().parents[2]
ECHO = "providers: {e: {kind: echo}}\nmodels: {m: {provider: e}}\n"


def relay(
    *args: str, cwd: Path, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; the caller's environment minus what would change the config.

    ``env`` adds variables, or removes those given as None.
    """
    run_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RELAY_CONFIG", "SERVER_PORT", "RELAY_LOG_LEVEL", "RELAY_CONFIG_FILE")
    }
    for key, value in (env or {}).items():
        if value is None:
            run_env.pop(key, None)
        else:
            run_env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=run_env,
        cwd=cwd,
    )


def test_version(tmp_path: Path) -> None:
    result = relay("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"relay {__version__}\n")


def test_bare_relay_prints_help(tmp_path: Path) -> None:
    result = relay(cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: relay")
    assert "serve" in result.stdout and "check-config" in result.stdout


def test_serve_help_documents_its_flags(tmp_path: Path) -> None:
    text = relay("serve", "--help", cwd=tmp_path).stdout
    for flag in ("--config", "--host", "--port", "--workers", "--log-level", "--reuse-port"):
        assert flag in text


BROKEN = {
    # the example: three problems, three lines
    "server-fields": (
        ECHO + "server: {prot: 8080, workers: two, max_body_bytes: -5}\n",
        [
            f"server.prot: unknown field (known: {', '.join(sorted(ServerConfig.__struct_fields__))})",
            "server.workers: expected an integer, got 'two'",
            "server.max_body_bytes: expected at least 1024, got -5",
        ],
    ),
    # used to pass the check, then crash every worker / end in a traceback
    "serve-crashers": (
        ECHO + "server: {log_level: loud, host: not a host}\n",
        [
            "server.host: expected an IP address to listen on (127.0.0.1, 0.0.0.0, ::1, ::), got 'not a host'",
            "server.log_level: unknown level 'loud' (known: critical, debug, error, info, warning)",
        ],
    ),
    # one typo, one line: not a follow-on error on each model using the provider
    "provider-typo": (
        "providers: {o: {kind: openai, base_url: 'http://h/v1', api_kye: k}}\n"
        "models: {a: {provider: o}, b: {provider: o}}\n",
        [
            "providers.o.api_kye: unknown field (known: anthropic_version, api_key, api_version, "
            "aws_access_key_id, aws_secret_access_key, aws_session_token, base_url, "
            "bearer_token, chunk_delay_ms, endpoint_url, forward_client_auth, headers, kind, "
            "max_tokens_default, native_responses, region, settings, timeouts)"
        ],
    ),
    "ranges": (
        "providers: {e: {kind: echo, chunk_delay_ms: -5}}\nmodels: {m: {provider: e}}\n"
        "ratelimit: {enabled: true, requests_per_second: -1, burst: 0}\n"
        "redis: {db: -2}\n",
        [
            "providers.e.chunk_delay_ms: expected 0 or more, got -5.0",
            "redis.db: expected a database number of 0 or more, got -2",
            "ratelimit.requests_per_second: expected more than 0, got -1.0",
            "ratelimit.burst: expected at least 1, got 0",
        ],
    ),
    "empty": ("", ["the file is empty (or only comments): there is nothing to serve"]),
    "duplicate-key": (
        ECHO + "server:\n  port: 8080\n  port: 9090\n",
        ["server.port: duplicate key (lines 4 and 5); YAML would keep only the last"],
    ),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_check_config_lists_every_problem_and_serve_refuses_with_the_same_words(
    name: str, tmp_path: Path
) -> None:
    text, expected = BROKEN[name]
    (tmp_path / "bad.yaml").write_text(text)
    report = "bad.yaml: invalid configuration\n" + "".join(f"  {p}\n" for p in expected)

    check = relay("check-config", "bad.yaml", cwd=tmp_path)
    assert (check.returncode, check.stderr, check.stdout) == (1, report, "")
    serve = relay("serve", "--config", "bad.yaml", "--port", str(free_port()), cwd=tmp_path)
    assert (serve.returncode, serve.stderr) == (1, report)


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--port", "0"], {}, "server.port (from --port): expected 1-65535, got 0"),
        (
            [],
            {"SERVER_PORT": "eighty"},
            'server.port (from SERVER_PORT): expected a port number, ":PORT" or "HOST:PORT", got \'eighty\'',
        ),
        (
            ["--log-level", "loud"],
            {},
            "server.log_level (from --log-level): unknown level 'loud' (known: critical, debug, error, info, warning)",
        ),
        (
            [],
            {"RELAY_LOG_LEVEL": "loud"},
            "server.log_level (from RELAY_LOG_LEVEL): unknown level 'loud' (known: critical, debug, error, info, warning)",
        ),
    ],
)
def test_flags_and_variables_are_validated_and_named(
    args: list[str], env: dict[str, str | None], line: str, tmp_path: Path
) -> None:
    result = relay("serve", *args, cwd=tmp_path, env=env)
    assert (result.returncode, result.stderr) == (
        1,
        f"<embedded default>: invalid configuration\n  {line}\n",
    )


def test_check_config_no_longer_warns_about_limits_and_redis(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(ECHO + "ratelimit: {enabled: true}\nredis: {enabled: true}\n")
    result = relay("check-config", "c.yaml", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "c.yaml: ok (1 providers, 1 models)\n"
    assert result.stderr.splitlines() == []  # both are enforced now


def test_check_config_finds_the_config_like_serve(tmp_path: Path) -> None:
    assert relay("check-config", cwd=tmp_path).stdout.startswith("<embedded default>: ok")
    (tmp_path / "config.yaml").write_text(ECHO)
    assert relay("check-config", cwd=tmp_path).stdout.startswith("config.yaml: ok")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.yaml").write_text("")
    result = relay("check-config", cwd=tmp_path)
    assert result.stderr.startswith("configs/config.yaml: invalid configuration")
    other = tmp_path / "other.yaml"
    other.write_text(ECHO)
    result = relay("check-config", cwd=tmp_path, env={"RELAY_CONFIG": str(other)})
    assert result.stdout.startswith(f"{other}: ok")


def test_a_port_held_by_another_program_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for extra in ([], ["--reuse-port"]):
            result = relay("serve", "--port", str(port), *extra, cwd=tmp_path)
            assert result.returncode == 1
            assert len(result.stderr.splitlines()) == 1, result.stderr
            assert result.stderr.startswith(
                f"relay: cannot listen on 127.0.0.1:{port}: port {port} "
            )


def test_the_docs_check_config_example_is_real_output(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    match = re.search(
        r"\$ cat bad\.yaml\n(.*?)\$ relay check-config bad\.yaml\n(.*?)```", page, re.S
    )
    assert match, "docs/configuration.md lost its check-config example"
    (tmp_path / "bad.yaml").write_text(match.group(1))
    result = relay("check-config", "bad.yaml", cwd=tmp_path, env={"OPENAI_API_KEY": None})
    assert result.returncode == 1
    assert result.stderr == match.group(2)


@pytest.mark.parametrize(
    "content",
    [
        b"server: {prot: 8080}\n",  # a wrong field
        b"server: {port: 1\nmodels: [",  # YAML syntax, and no newline at the end of the file
        b"models: {m\x01: {}}\n",  # a character YAML refuses
        b'server: {"pr\\not": 1}\n',  # a key with a newline in it
        b"\xff\xfe not utf-8",
        b"",
        b"# only a comment",
    ],
)
def test_check_config_on_a_broken_file_is_one_line_per_problem(
    content: bytes, tmp_path: Path
) -> None:
    (tmp_path / "broken.yaml").write_bytes(content)
    result = relay("check-config", "broken.yaml", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.endswith("\n"), repr(result.stderr)
    # Each of these files has one problem: one line, indented under the file's name.
    first, *problems = result.stderr.splitlines()
    assert first == "broken.yaml: invalid configuration"
    assert len(problems) == 1 and problems[0].startswith("  "), result.stderr
