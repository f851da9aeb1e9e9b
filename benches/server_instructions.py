"""Instructions per request of the whole serving process, by shared object, under callgrind:
where the gateway's cost over the bare stack goes (granian, aiohttp's C parts, the interpreter,
SQLite, libc), counted exactly however busy the machine is.

    python3 benches/server_instructions.py [--requests 1000] [--variant bare|relay|... ...]
        [--stream] [--keep]

Each variant's server (``bare``: ``bare_proxy:proxy``; ``relay``: this checkout with the default
SQLite ledger; ``relay-noledger``: the ledger off; ``relay-core``: the ledger, metrics and the
access line off) runs under ``valgrind --tool=callgrind
--trace-children=yes`` against ``mock_upstream.py`` (not under valgrind). After 300 warm-up
requests one at a time, the worker's counters are zeroed, ``--requests`` more are sent, and
the counters dumped: the dump holds exactly those requests, every thread of the worker
included (granian's Rust threads, the ledger's SQLite thread).

Read it for where instructions go, not as time: callgrind counts user-space instructions only
(a system call is one instruction, and the kernel's share of the bare stack's CPU is large), and
under valgrind requests are ~50 times slower, so the ledger writer flushes smaller batches than
it would at full speed and its per-row fixed costs weigh more. About 4 minutes per variant.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
MOCK_PORT = 9151
PORT = 8097
_NAMED = re.compile(r"\((\d+)\)(?: (.*))?")
# relay-noledger: the ledger off; relay-core: the ledger, metrics and the access line off.
VARIANTS = ("bare", "relay", "relay-noledger", "relay-core")


def self_cost_by_object(path: Path) -> collections.Counter[str]:
    """Self instructions per shared object of one callgrind output (name compression and
    call lines handled: a cost line after ``calls=`` is the call's inclusive cost, skipped)."""
    names: dict[str, str] = {}
    costs: collections.Counter[str] = collections.Counter()
    current = "?"
    after_call = False
    with path.open(errors="replace") as lines:
        for line in lines:
            if line.startswith(("ob=", "cob=")):
                key, _, value = line.rstrip("\n").partition("=")
                found = _NAMED.match(value)
                if found:
                    if found.group(2) is not None:
                        names[found.group(1)] = found.group(2)
                    value = names.get(found.group(1), value)
                if key == "ob":
                    current = value.rsplit("/", 1)[-1]
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if len(fields) >= 2:
                    if after_call:
                        after_call = False
                    else:
                        costs[current] += int(fields[1])
    return costs


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not ready in {timeout_s:.0f} s")


def send(count: int, stream: bool) -> None:
    """``count`` requests one at a time (compare.py's sequential client)."""
    subprocess.run(
        [sys.executable, str(HERE / "compare.py"), "sequential", "--url",
         f"http://{HOST}:{PORT}/v1", "--count", str(count), "--warmup", "0"]
        + (["--stream"] if stream else []),
        check=True, capture_output=True,
    )  # fmt: skip


def measure(
    variant: str, requests: int, tmp: Path, stream: bool = False
) -> collections.Counter[str]:
    """Instructions per shared object for ``requests`` requests through ``variant``."""
    out = tmp / f"cg.{variant}"
    python = os.path.realpath(sys.executable)  # not a shim: valgrind follows the interpreter
    valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--dump-instr=no",
                f"--callgrind-out-file={out}.%p"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    if variant == "bare":
        env["BARE_UPSTREAM"] = f"http://{HOST}:{MOCK_PORT}/v1"
        argv = [python, "-m", "granian", "--interface", "rsgi", "--loop", "uvloop",
                "--workers", "1", "--host", HOST, "--port", str(PORT),
                "--working-dir", str(HERE), "bare_proxy:proxy"]  # fmt: skip
    else:
        config = tmp / f"{variant}.yaml"
        ledger = (
            "database: {ledger: {enabled: false}}"
            if variant in ("relay-noledger", "relay-core")
            else f"database: {{url: 'sqlite:///{tmp}/{variant}.db'}}"
        )
        if variant == "relay-core":  # metrics and the access line off too
            ledger += "\nmetrics: {enabled: false}"
        access = ", access_log: false" if variant == "relay-core" else ""
        config.write_text(
            f"server: {{host: {HOST}, port: {PORT}, workers: 1{access}}}\n"
            f"providers: {{mock: {{kind: openai, base_url: 'http://{HOST}:{MOCK_PORT}/v1', "
            "api_key: sk-bench}}\n"
            "models: {bench-model: {provider: mock, pricing: {input: 1.0, output: 2.0}}}\n"
            f"{ledger}\n"
        )
        argv = [python, "-m", "relay", "serve", "--config", str(config)]
    log = (tmp / f"{variant}.log").open("w")
    server = subprocess.Popen(
        valgrind + argv, env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        wait_ready(f"http://{HOST}:{PORT}/readyz", 300)
        send(300, stream)
        time.sleep(2)
        # Every process valgrind runs for this server (the worker among them): callgrind
        # writes its output only at a dump or at exit, so they are found by command line.
        found = subprocess.run(
            ["pgrep", "-f", f"callgrind-out-file={out}."], capture_output=True, text=True
        )
        running = found.stdout.split()
        for pid in running:
            subprocess.run(["callgrind_control", "-z", pid], capture_output=True, check=False)
        send(requests, stream)
        for pid in running:
            subprocess.run(["callgrind_control", "-d", pid], capture_output=True, check=False)
        time.sleep(3)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    # The worker's dump is the one that holds the requests: the largest.
    dumps = [self_cost_by_object(path) for path in tmp.glob(f"cg.{variant}.*.1")]
    worker = max(dumps, key=lambda costs: sum(costs.values()), default=None)
    if worker is None:
        raise RuntimeError(f"no callgrind dump for {variant}; see {tmp}/{variant}.log")
    return worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--variant", action="append", choices=VARIANTS)
    parser.add_argument(
        "--stream", action="store_true", help="20-chunk streams instead of tiny JSON requests"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the callgrind dumps (for callgrind_annotate)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    variants = args.variant or list(VARIANTS)
    tmp = Path(tempfile.mkdtemp(prefix="relay-server-cg-"))
    mock = subprocess.Popen(
        [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(MOCK_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        results = {v: measure(v, args.requests, tmp, args.stream) for v in variants}
    finally:
        os.killpg(mock.pid, signal.SIGTERM)
    objects = sorted(
        {o for costs in results.values() for o in costs},
        key=lambda o: -max(costs[o] for costs in results.values()),
    )
    kind = "20-chunk stream" if args.stream else "tiny body"
    print(f"instructions per request ({args.requests} requests, one at a time, {kind})")
    print(f"{'shared object':<46}" + "".join(f"{v:>16}" for v in variants))
    for name in objects[:14]:
        row = "".join(f"{results[v][name] / args.requests:>16,.0f}" for v in variants)
        print(f"{name[:45]:<46}{row}")
    totals = {v: sum(results[v].values()) / args.requests for v in variants}
    print(f"{'total':<46}" + "".join(f"{totals[v]:>16,.0f}" for v in variants))
    if args.keep:
        print(f"callgrind dumps kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
