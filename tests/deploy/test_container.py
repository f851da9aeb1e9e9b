"""The built image, run with podman and driven from the host as a user would.

``make container-test`` (scripts/container.sh) builds the Dockerfile and runs this module with
``RELAY_TEST_IMAGE`` set; a plain ``pytest`` deselects it (tests/deploy/conftest.py).

The container shares the host's network (``--network host``), so the gateway inside reaches
the fake upstream on the host's loopback and the tests reach the gateway there too: every
address stays on loopback. The config is a mounted file whose port, upstream URL and key
come from the environment, as a deployment would do it; the ledger goes to a named volume.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream, start_fake_upstream
from tests.integration.gateway import free_port

pytestmark = pytest.mark.container

UPSTREAM_KEY = "sk-test-upstream"
# The user the Dockerfile creates (numeric, for Kubernetes' runAsNonRoot).
RELAY_UID = 10001
# A mounted config: only what a user would write; the environment fills in the rest.
CONFIG = """\
server:
  workers: 2
  drain_timeout_s: 10
auth:
  mode: none              # no gateway keys: the test is about the container, not auth
providers:
  fake:
    kind: openai
    base_url: ${UPSTREAM_URL}
    api_key: ${UPSTREAM_KEY}
models:
  gpt-4o-mini:
    provider: fake
  slow-stream:
    provider: fake
    model: trickle-250
"""
MESSAGES: Any = [{"role": "user", "content": "hello from the host"}]


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """podman with the storage scripts/container.sh configured (CONTAINERS_* variables)."""
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result


@dataclass
class Container:
    """One running gateway container and how to reach it."""

    name: str
    port: int
    volume: str
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exit_code(self) -> int:
        state = json.loads(podman("inspect", self.name, "--format", "{{json .State}}").stdout)
        return int(state["ExitCode"])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(container: Container, deadline_s: float = 60) -> None:
    """Poll /readyz until 200; fail with the container's log when it never comes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if get(container.url + "/readyz")[0] == 200:
                return
        except OSError:
            pass
        if podman("inspect", container.name, "--format", "{{.State.Running}}").stdout.strip() != (
            "true"
        ):
            break
        time.sleep(0.2)
    raise AssertionError(f"the container never became ready:\n{container.logs()}")


@pytest.fixture(scope="module")
def image() -> str:
    return os.environ["RELAY_TEST_IMAGE"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_fake_upstream(UPSTREAM_KEY) as up:
        yield up


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("container") / "config.yaml"
    path.write_text(CONFIG)
    path.chmod(0o644)  # the container's user is not the host's
    return path


def start(image: str, upstream: FakeUpstream, config_file: Path) -> Container:
    tag = uuid.uuid4().hex[:8]
    container = Container(name=f"relay-test-{tag}", port=free_port(), volume=f"relay-data-{tag}")
    podman("volume", "create", container.volume)
    podman(
        "run",
        "--detach",
        "--name",
        container.name,
        "--network",
        "host",
        # podman has no scheduler for HEALTHCHECK here: the tests run it (podman healthcheck run)
        "--health-interval",
        "disable",
        "--volume",
        f"{config_file}:/etc/relay/config.yaml:ro",
        "--volume",
        f"{container.volume}:/data",
        "--env",
        f"SERVER_PORT={container.port}",
        "--env",
        f"UPSTREAM_URL={upstream.base_url}",
        "--env",
        f"UPSTREAM_KEY={UPSTREAM_KEY}",
        image,
    )
    wait_ready(container)
    return container


def remove(container: Container) -> None:
    podman("rm", "--force", "--volumes", "--time", "0", container.name, check=False)
    podman("volume", "rm", "--force", container.volume, check=False)


@pytest.fixture(scope="module")
def running(image: str, upstream: FakeUpstream, config_file: Path) -> Iterator[Container]:
    container = start(image, upstream, config_file)
    yield container
    remove(container)


def test_the_image_holds_this_checkouts_code(image: str) -> None:
    # A builder whose layer cache missed a change would test yesterday's gateway.
    listing = podman(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-c",
        "import hashlib, json, pathlib, relay\n"
        "root = pathlib.Path(relay.__file__).parent\n"
        "print(json.dumps({str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()"
        " for p in root.rglob('*.py')}))",
    ).stdout
    source = Path(__file__).resolve().parents[2] / "python/relay"
    expected = {
        str(p.relative_to(source)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in source.rglob("*.py")
    }
    assert json.loads(listing) == expected


def test_json_completion_through_the_container(running: Container, upstream: FakeUpstream) -> None:
    answer = running.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert answer.choices[0].message.content == "Echo: hello from the host"
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    # the provider key came from the environment, through the mounted file's ${UPSTREAM_KEY}
    seen = upstream.requests()[-1]
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_stream_through_the_container(running: Container) -> None:
    stream = running.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello from the host"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_healthz_and_the_image_healthcheck(running: Container) -> None:
    assert get(running.url + "/healthz") == (200, b'{"status":"ok"}')
    # The image's HEALTHCHECK finds the port that SERVER_PORT moved.
    check = podman("healthcheck", "run", running.name, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_process_runs_as_the_unprivileged_user(running: Container) -> None:
    # /proc of the container: granian's main process and its two workers, not one as root.
    listing = podman(
        "exec",
        running.name,
        "python",
        "-c",
        "import os\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    status = open(f'/proc/{pid}/status').read().splitlines()\n"
        "    fields = dict(line.split(':\\t', 1) for line in status if ':\\t' in line)\n"
        "    print(fields['Name'], fields['Uid'].split()[0])\n",
    ).stdout
    processes = [line.split() for line in listing.splitlines()]
    # granian's main process (PID 1) and the config's two workers, plus the exec'd python
    assert [name for name, _ in processes].count("relay") == 3, listing
    assert {int(uid) for _, uid in processes} == {RELAY_UID}, listing


def test_sigterm_lets_a_stream_in_flight_finish(
    image: str, upstream: FakeUpstream, config_file: Path
) -> None:
    container = start(image, upstream, config_file)
    try:
        stream = container.client().chat.completions.create(
            model="slow-stream",
            messages=[{"role": "user", "content": "one two three four five six seven"}],
            stream=True,
        )
        chunks = iter(stream)
        first = next(chunks)  # the stream is under way: the upstream trickles one event per 250 ms
        # `podman stop` sends the image's STOPSIGNAL (SIGTERM) and waits up to 30 s
        stop = threading.Thread(
            target=podman, args=("stop", "--time", "30", container.name), daemon=True
        )
        stop.start()
        rest = list(chunks)
        stop.join(60)
        assert not stop.is_alive()
        text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
        assert text == "Echo: one two three four five six seven"
        assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "stop"
        assert container.exit_code() == 0, container.logs()
        logs = container.logs()
        # SIGTERM reached the workers while the stream ran, and the drain let it finish
        assert "draining 1 in-flight requests" in logs, logs
        assert "still running after the drain timeout" not in logs, logs
        assert "Traceback" not in logs, logs
        # the ledger was flushed on the way out, into the volume
        rows = podman(
            "run",
            "--rm",
            "--volume",
            f"{container.volume}:/data",
            "--entrypoint",
            "python",
            image,
            "-c",
            "import sqlite3; print(sqlite3.connect('/data/relay.db')"
            ".execute('select count(*) from requests').fetchone()[0])",
        ).stdout
        assert int(rows) == 1
    finally:
        remove(container)
