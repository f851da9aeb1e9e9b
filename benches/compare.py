"""Several gateway variants side by side, in one run, as ratios to the bare stack.

Which costs more, and by how much: Relay before a change or after it, against the least any
gateway on this stack costs (``bare_proxy.py``'s granian + aiohttp pass-through)? Every
variant is measured in the same run, against the same fake upstream, with the same client,
in turns (A, B, C, A, B, C ... for ``--rounds``), so drift of a shared machine hits all of
them alike. Variants are named on the command line:

* ``bare``: ``bare_proxy:proxy`` on granian (RSGI, uvloop, one worker);
* ``bare-h1``: ``bare_proxy:h1proxy``, the same with Relay's own upstream client
  (``relay.upstream.h1``) instead of aiohttp: what the client alone saves;
* ``relay``: this checkout (``PYTHONPATH=<repo>/python``), uncommitted changes included;
* ``relay@REV``: Relay at git revision REV, from a worktree at ``/tmp/relay-bench-REV`` made
  (or reused) here; when the worktree has no compiled extension
  (``python/relay/_native.abi3.so``), this checkout's is copied if REV's Rust sources are the
  same, and REV's own is built (``maturin build``) if they differ;
* ``relay-noledger``, ``relay-core``: this checkout with default capabilities turned off (the
  ledger; the ledger, metrics and the access line), to show in one run what each costs;
  ``relay-ledger``, ``relay-metrics``, ``relay-access``: relay-core with that one default on;
* ``NAME=COMMAND``: any server; ``COMMAND`` is a template with ``{python}``, ``{port}``,
  ``{upstream}`` (the mock's ``/v1`` URL), ``{config}`` (a Relay config pointing at the mock)
  and ``{benches}``; it must answer ``GET /readyz`` with 200 once ready.

Each variant's server is started alone, pinned to the gateway CPU, for each round; the mock
upstream and every client run on the client CPU, as in ``run.py``. Phases, per variant and
for the direct path (client -> mock) in the same round:

1. one request at a time (closed loop), non-streaming, with a tiny body and with 4 KB and
   40 KB user messages: latency p50/p99, "added" = variant - direct, and the server's CPU
   time per request (its whole process group, from /proc), of which Relay's writer threads
   (``bg us``: threads the kernel knows as ``relay-*``);
2. open loop at ``--open-rate`` (1,000/s) with ``loadgen.py`` (``run.py``'s ``run_load``):
   CPU per request and added p50/p99;
3. 20-chunk streams one at a time (the mock sends them without gaps): CPU per stream and,
   derived and approximate, CPU per relayed event = (CPU per stream - CPU per tiny request)
   / chunks;
4. with ``--ceiling``: ``run.py``'s throughput search (its ``run_load`` and ``passes``) per
   variant; the highest passing rate.

It prints one table per phase (medians over the rounds, and each variant's ratio to
``--baseline``, ``bare`` by default) and writes ``benches/results/compare-<timestamp>.json``.

    python3 benches/compare.py bare relay@b075c2c relay [--rounds 2] [--ceiling] [--quick]
    python3 benches/compare.py bare relay-core relay-noledger relay   # what each capability costs
    python3 benches/compare.py sequential --url http://127.0.0.1:9101/v1 --count 2000 \\
        [--body-bytes 4096] [--stream]      # the closed-loop client alone
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import run as harness  # noqa: E402

REPO = harness.REPO
HOST = harness.HOST
NATIVE = Path("python/relay/_native.abi3.so")
# Everything the compiled extension is built from: a revision that differs here needs its own.
NATIVE_SOURCES = ("rust", "Cargo.toml", "Cargo.lock", "pyproject.toml")
LOG_MARKERS = ('"level":"error"', "Traceback", "[ERROR]", "Respawning")
SIZES = (("tiny", 0), ("4k", 4096), ("40k", 40960))
# Kernel names of Relay's writer threads (relay/background.py names them).
BACKGROUND = "relay-"
# This checkout with default capabilities turned off, to show what each costs in one run:
# variant name -> (server keys added to the run's config, config lines appended).
TRIMS = {
    "relay-noledger": ("", "database: {ledger: {enabled: false}}\n"),
    "relay-aiohttp": (", upstream_client: aiohttp", ""),
    "relay-core": (
        ", access_log: false",
        "database: {ledger: {enabled: false}}\nmetrics: {enabled: false}\n",
    ),
    # relay-core with one of the three defaults back on: what each costs alone.
    "relay-ledger": (", access_log: false", "metrics: {enabled: false}\n"),
    "relay-metrics": (", access_log: false", "database: {ledger: {enabled: false}}\n"),
    "relay-access": ("", "database: {ledger: {enabled: false}}\nmetrics: {enabled: false}\n"),
}


# -- request bodies ----------------------------------------------------------------------------
_VOCABULARY = (
    "the a our this each customer account invoice quarterly report shows revenue growth "
    "retention improved declined because support team product release pricing change region "
    "north south europe asia market share forecast budget meeting notes summary follow-up "
    "action items owner deadline risk mitigation please draft reply explain briefly clearly "
    "in for with from about after before during and but so while although compare previous "
    "year month week data table chart figure percent increase decrease estimate assumption "
    "contract renewal churn onboarding feedback survey score issue ticket escalation latency "
    "outage incident postmortem root cause fix deploy rollback review approve sign-off "
    "café naïve résumé"
)
_WORDS = _VOCABULARY.split()


def prose(size: int) -> str:
    """Deterministic English-like text of exactly ``size`` UTF-8 bytes (sentences, quotes,
    paragraphs and a few non-ASCII words, so JSON escaping and UTF-8 both get exercised)."""
    rng = random.Random(size)
    parts: list[str] = []
    length = 0
    while length < size + 64:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 22))]
        if rng.random() < 0.25:
            i = rng.randrange(len(words) - 2)
            words[i] = '"' + words[i]
            words[i + 1] += '"'
        if rng.random() < 0.3:
            words[rng.randrange(len(words) - 1)] += ","
        sentence = " ".join(words)
        sentence = sentence[0].upper() + sentence[1:] + rng.choice(".....?!:")
        sep = "\n\n" if rng.random() < 0.12 else " "
        parts.append(sentence + sep)
        length += len((sentence + sep).encode())
    raw = "".join(parts).encode()[:size].decode(errors="ignore").rstrip()
    return raw + "." * (size - len(raw.encode()))


def body_for(model: str, body_bytes: int, stream: bool, max_tokens: int = 32) -> bytes:
    """The request body: loadgen's usual one, or a user message of ``body_bytes`` bytes.

    Streams ask for the usage chunk (``stream_options.include_usage``) so that every variant
    relays the same events: Relay asks upstream for it anyway, a pass-through would not.
    """
    settings = loadgen.Settings(url="", rate=1.0, duration=0.0, stream=stream, model=model)
    settings.max_tokens = max_tokens
    body = json.loads(loadgen.request_body(settings))
    if body_bytes > 0:
        body["messages"] = [{"role": "user", "content": prose(body_bytes)}]
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# -- the closed-loop client (a child process, pinned with the mock) ----------------------------
async def sequential(
    url: str, count: int, warmup: int, body: bytes, stream: bool, model: str
) -> dict[str, Any]:
    """``warmup`` then ``count`` requests, one at a time on one connection; loadgen's request
    code and summaries, a closed loop instead of its open one."""
    import aiohttp

    settings = loadgen.Settings(url=url, rate=1.0, duration=0.0, stream=stream, model=model)
    gen = loadgen.LoadGen(settings)
    gen.body = body
    gen.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=settings.timeout),
        auto_decompress=False,
    )
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        for _ in range(warmup):
            await gen.one(time.perf_counter(), False)
        t0 = time.perf_counter()
        for _ in range(count):
            await gen.one(time.perf_counter(), True)
        wall = time.perf_counter() - t0
        await gen.session.close()
    finally:
        gc.enable()
        gc.unfreeze()
    smp = gen.samples
    out: dict[str, Any] = {
        "url": gen.endpoint,
        "mode": "stream" if stream else "json",
        "body_bytes": len(body),
        "warmup": warmup,
        "count": count,
        "ok": len(smp.latency),
        "errors": sum(smp.errors.values()),
        "error_kinds": dict(smp.errors),
        "achieved_rps": round(count / wall, 1) if wall > 0 else 0.0,
        "latency_ms": loadgen.summarize(smp.latency),
        "cpu_s": round(time.process_time(), 3),
    }
    if stream:
        out["ttft_ms"] = loadgen.summarize(smp.ttft)
    return out


def sequential_main(argv: Sequence[str]) -> int:
    """``compare.py sequential ...``: the closed-loop client on its own."""
    p = argparse.ArgumentParser(prog="compare.py sequential", description=sequential.__doc__)
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:9101/v1")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--body-bytes", type=int, default=0, help="user message size (0: tiny)")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--model", default="bench-model")
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument("--out", default=None, help="write the JSON report here (else stdout)")
    args = p.parse_args(argv)
    if not loadgen.is_loopback(args.url):
        print(f"refusing non-loopback target {args.url}", file=sys.stderr)
        return 2
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    body = body_for(args.model, args.body_bytes, args.stream)
    coro = sequential(args.url, args.count, args.warmup, body, args.stream, args.model)
    try:
        import uvloop
    except ImportError:
        report = asyncio.run(coro)
    else:
        report = uvloop.run(coro)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def run_sequential(
    kids: harness.Children,
    base: str,
    *,
    count: int,
    warmup: int,
    body_bytes: int,
    stream: bool,
    cpu: int | None,
    tmp: Path,
    watch: dict[str, int],
    model: str,
) -> dict[str, Any]:
    """One closed-loop run as a child; its report with the CPU time of the ``watch`` groups,
    accounted like ``run.run_load`` does (per request sent, warm-up included)."""
    out = tmp / f"seq-{time.monotonic_ns()}.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "sequential", "--url", base]
    argv += ["--count", str(count), "--warmup", str(warmup), "--body-bytes", str(body_bytes)]
    argv += ["--model", model, "--out", str(out)] + (["--stream"] if stream else [])
    before = {name: harness.group_cpu_s(pgid) for name, pgid in watch.items()}
    server = watch.get("server")
    background0 = harness.group_threads_cpu_s(server, BACKGROUND) if server else 0.0
    busy0, wall0 = harness.machine_busy_s(), time.monotonic()
    proc = kids.start(argv, cpu=cpu)
    try:
        code = proc.wait(timeout=120 + (count + warmup) * 0.1)
    finally:
        kids.stop(proc)
    wall, busy = time.monotonic() - wall0, harness.machine_busy_s() - busy0
    if code != 0 or not out.exists():
        raise RuntimeError(f"sequential client failed with status {code}: {shlex.join(argv)}")
    report: dict[str, Any] = json.loads(out.read_text())
    sent = count + warmup
    cpu_use: dict[str, float | None] = {"wall_s": round(wall, 3), "client_s": report["cpu_s"]}
    ours = report["cpu_s"]
    for name, pgid in watch.items():
        spent = harness.group_cpu_s(pgid) - before[name]
        if spent < 0:
            cpu_use[f"{name}_s"] = cpu_use[f"{name}_us_per_request"] = None
            continue
        ours += spent
        cpu_use[f"{name}_s"] = round(spent, 3)
        cpu_use[f"{name}_us_per_request"] = round(spent / sent * 1e6, 1)
    if server:
        # Relay's writer threads (the ledger's SQLite writer, the access-line writer): work
        # done beside the loop, included in the server's figure above.
        background = harness.group_threads_cpu_s(server, BACKGROUND) - background0
        cpu_use["server_background_us_per_request"] = round(max(background, 0.0) / sent * 1e6, 1)
    cpu_use["other_s"] = round(max(busy - ours, 0.0), 3)
    cpu_use["other_cpu_fraction"] = round(max(busy - ours, 0.0) / wall, 3)
    report["cpu"] = cpu_use
    return report


# -- variants ----------------------------------------------------------------------------------
@dataclass
class Variant:
    """One server to measure: how to start it, and where its code came from."""

    name: str
    kind: str  # bare | relay | custom
    template: str = ""  # custom only
    root: Path | None = None  # relay: the checkout whose python/ is on PYTHONPATH
    info: dict[str, Any] = field(default_factory=dict)
    trim: str = ""  # relay: a key of TRIMS (capabilities off), or "" for the defaults

    def write_config(self, config: Path, port: int, mock_port: int, model: str) -> None:
        """The run's Relay config, with this variant's capabilities turned off."""
        harness.gateway_config(config, port, mock_port, model)
        if self.trim:
            server_keys, lines = TRIMS[self.trim]
            text = config.read_text().replace("workers: 1}", f"workers: 1{server_keys}}}", 1)
            config.write_text(text + lines)

    def argv(self, port: int, upstream: str, config: Path) -> list[str]:
        py = sys.executable
        if self.kind == "bare":
            granian = ["--interface", "rsgi", "--loop", "uvloop", "--workers", "1"]
            granian += ["--host", HOST, "--port", str(port), "--working-dir", str(HERE)]
            env = [f"BARE_UPSTREAM={upstream}"]
            if self.root is not None:  # bare-h1: Relay's upstream client, from this checkout
                env.append(f"PYTHONPATH={self.root / 'python'}")
            app = self.info.get("app", "bare_proxy:proxy")
            return ["env", *env, py, "-m", "granian", *granian, app]
        if self.kind == "relay":
            assert self.root is not None
            serve = ["--config", str(config), "--port", str(port), "--workers", "1"]
            return ["env", f"PYTHONPATH={self.root / 'python'}", py, "-m", "relay", "serve", *serve]
        command = self.template.format(
            python=py, port=port, upstream=upstream, config=config, benches=HERE
        )
        return shlex.split(command)


def git(*args: str, cwd: Path = REPO) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def worktree(rev: str) -> tuple[Path, dict[str, Any]]:
    """A detached worktree of REPO at ``rev`` under /tmp (made, or reused when it is there and
    at the same commit), with the compiled extension copied in when it has none."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = Path("/tmp") / ("relay-bench-" + re.sub(r"[^A-Za-z0-9._-]", "-", rev))
    if path.exists():
        try:
            there = git("rev-parse", "HEAD", cwd=path)
        except RuntimeError:
            there = ""
        if there != commit:
            raise RuntimeError(
                f"{path} exists but is not a worktree at {rev} ({commit[:12]}); remove it"
                f" (git worktree remove --force {path}) or name the revision differently"
            )
        made = False
    else:
        print(f"  making worktree {path} at {commit[:12]}", flush=True)
        git("worktree", "add", "--detach", str(path), commit)
        made = True
    info: dict[str, Any] = {"rev": rev, "commit": commit, "worktree": str(path), "made": made}
    # The extension of this checkout is built from its working tree: compare the sources.
    differ = subprocess.run(
        ["git", "-C", str(REPO), "diff", "--quiet", commit, "--", *NATIVE_SOURCES],
        check=False,
    )
    info["native_sources_differ"] = differ.returncode != 0
    native = path / NATIVE
    if native.exists():
        info["native"] = "already there"
    elif info["native_sources_differ"]:
        # Copying ours would measure this checkout's Rust under REV's Python.
        build_native(path)
        info["native"] = f"built from {rev}"
    else:
        if not (REPO / NATIVE).exists():
            raise RuntimeError(f"{REPO / NATIVE} is missing: build the extension (make dev)")
        shutil.copy2(REPO / NATIVE, native)
        info["native"] = "copied from this checkout (the same sources)"
    return path, info


def build_native(tree: Path) -> None:
    """Build ``tree``'s own extension (``maturin build --release --locked``, about 45 s on two
    cores) and put its ``.so`` at ``tree / NATIVE``, without touching any installation."""
    print(f"  building the extension of {tree} (its Rust differs from this checkout's)", flush=True)
    with tempfile.TemporaryDirectory(prefix="relay-bench-wheel-") as out:
        cmd = ["maturin", "build", "--release", "--locked", "--quiet", "-o", out]
        proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=False)
        wheels = list(Path(out).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(f"maturin build in {tree} failed: {proc.stderr.strip()[-2000:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            name = next(n for n in wheel.namelist() if n.startswith("relay/_native"))
            (tree / NATIVE).write_bytes(wheel.read(name))
    (tree / NATIVE).chmod(0o755)


def checkout_info(root: Path) -> dict[str, Any]:
    dirty = git("status", "--porcelain", "--untracked-files=no", cwd=root)
    return {"commit": git("rev-parse", "HEAD", cwd=root), "dirty": bool(dirty)}


def parse_variant(spec: str) -> Variant:
    if "=" in spec:
        name, template = spec.split("=", 1)
        return Variant(name.strip(), "custom", template=template)
    if spec == "bare":
        return Variant("bare", "bare")
    if spec == "bare-h1":
        return Variant("bare-h1", "bare", root=REPO, info={"app": "bare_proxy:h1proxy"})
    if spec == "relay":
        return Variant("relay", "relay", root=REPO, info=checkout_info(REPO))
    if spec in TRIMS:
        return Variant(spec, "relay", root=REPO, info=checkout_info(REPO), trim=spec)
    if spec.startswith("relay@") and len(spec) > len("relay@"):
        root, info = worktree(spec.split("@", 1)[1])
        return Variant(spec, "relay", root=root, info=info)
    known = ", ".join(["bare", "bare-h1", "relay", *TRIMS, "relay@REV", "NAME=COMMAND"])
    raise RuntimeError(f"unknown variant {spec!r}: {known}")


def check_import(v: Variant) -> None:
    """The relay package a variant's interpreter imports must be the variant's own."""
    assert v.root is not None
    env = dict(os.environ, PYTHONPATH=str(v.root / "python"))
    proc = subprocess.run(
        [sys.executable, "-c", "import relay, relay.app; print(relay.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"{v.name}: relay does not import from {v.root}: {last}")
    where = Path(proc.stdout.strip()).resolve()
    if not where.is_relative_to((v.root / "python").resolve()):
        raise RuntimeError(f"{v.name}: imports relay from {where}, not from {v.root}/python")
    v.info["imports_from"] = str(where.parent)


def log_name(name: str) -> str:
    return "compare-" + re.sub(r"[^A-Za-z0-9@._-]", "-", name) + ".log"


# -- the run -----------------------------------------------------------------------------------
def med(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


# Below this, an added latency is within the Python client's own noise: no ratio to it.
MIN_ADDED_MS = 0.1


def ratio(value: float | None, base: float | None, floor: float = 0.0) -> float | None:
    """``value / base``; None when either is unknown or ``base`` is not above ``floor``."""
    if value is None or base is None or base <= floor or base <= 0:
        return None
    return round(value / base, 2)


class Bench:
    """Runs every phase of every variant, in turns; keeps the raw reports."""

    def __init__(self, args: argparse.Namespace, kids: harness.Children, tmp: Path) -> None:
        self.args, self.kids, self.tmp = args, kids, tmp
        self.client_cpu = args.client_cpu if kids.cpu_ok else None
        self.server_cpu = args.gateway_cpu if kids.cpu_ok else None
        self.results_dir = Path(args.results_dir)
        self.mock_pid = 0
        self.upstream = ""

    def say(self, text: str) -> None:
        print(text, flush=True)

    def start_mock(self) -> None:
        a = self.args
        port = harness.free_port()
        argv = [sys.executable, str(HERE / "mock_upstream.py"), "--host", HOST, "--port"]
        argv += [str(port), "--chunks", str(a.chunks), "--chunk-gap-ms", str(a.chunk_gap_ms)]
        log = self.results_dir / "compare-mock.log"
        log.write_bytes(b"")
        mock = self.kids.start(argv, cpu=self.client_cpu, log=log)
        self.mock_pid = mock.pid
        self.upstream = f"http://{HOST}:{port}/v1"
        harness.wait_http(f"http://{HOST}:{port}/healthz", mock, 10, "mock upstream")

    def measure(self, name: str, base: str, watch: dict[str, int]) -> dict[str, Any]:
        """Every phase against ``base``; ``watch`` holds the process groups to account."""
        a = self.args
        out: dict[str, Any] = {}
        for size, nbytes in SIZES:
            self.say(f"    {name}: {a.requests}+{a.warmup_requests} sequential, {size} body")
            out[f"seq_{size}"] = run_sequential(
                self.kids, base, count=a.requests, warmup=a.warmup_requests, body_bytes=nbytes,
                stream=False, cpu=self.client_cpu, tmp=self.tmp, watch=watch, model=a.model,
            )  # fmt: skip
        self.say(
            f"    {name}: open loop {a.open_rate:g}/s for {a.open_warmup:g}+{a.open_duration:g} s"
        )
        out["open"] = harness.run_load(
            self.kids, base, a.open_rate, duration=a.open_duration, warmup=a.open_warmup,
            stream=False, cpu=self.client_cpu, tmp=self.tmp, watch=watch,
        )  # fmt: skip
        self.say(f"    {name}: {a.streams}+{a.warmup_streams} sequential {a.chunks}-chunk streams")
        out["stream"] = run_sequential(
            self.kids, base, count=a.streams, warmup=a.warmup_streams, body_bytes=0,
            stream=True, cpu=self.client_cpu, tmp=self.tmp, watch=watch, model=a.model,
        )  # fmt: skip
        if a.ceiling and "server" in watch:
            out["ceiling"] = self.ceiling(name, base, watch)
        return out

    def ceiling(self, name: str, base: str, watch: dict[str, int]) -> dict[str, Any]:
        """run.py's search: its rate steps, pass rule (``passes``) and loads (``run_load``)."""
        a = self.args
        steps: list[dict[str, Any]] = []
        best, rate = 0.0, a.search_start
        while rate <= a.search_max:
            self.say(f"    {name}: ceiling step {rate:g}/s")
            r = harness.run_load(
                self.kids, base, rate, duration=a.search_duration, warmup=a.search_warmup,
                stream=False, cpu=self.client_cpu, tmp=self.tmp, watch=watch,
            )  # fmt: skip
            ok, why = harness.passes(r, a)
            steps.append(
                {"rate": rate, "pass": ok, "why": why, "achieved_rps": r["achieved_rps"]}
                | {"p50": r["latency_ms"]["p50"], "p99": r["latency_ms"]["p99"]}
                | {
                    "errors": r["errors"],
                    "server_us_per_request": r["cpu"].get("server_us_per_request"),
                }
                | {"other_cpu_fraction": r["cpu"]["other_cpu_fraction"]}
            )
            if not ok:
                break
            best = rate
            rate += a.search_step
        return {"max_rps": best, "steps": steps}

    def variant_round(self, v: Variant) -> dict[str, Any]:
        """Start ``v`` alone on the gateway CPU, measure it, stop it."""
        port = harness.free_port()
        config = self.tmp / f"relay-{port}.yaml"
        mock_port = int(self.upstream.rsplit(":", 1)[1].split("/", 1)[0])
        v.write_config(config, port, mock_port, self.args.model)
        argv = v.argv(port, self.upstream, config)
        log = self.results_dir / log_name(v.name)
        with log.open("ab") as f:
            f.write(f"# --- {shlex.join(argv)}\n".encode())
        proc = self.kids.start(argv, cpu=self.server_cpu, log=log)
        try:
            base = f"http://{HOST}:{port}/v1"
            harness.wait_http(f"http://{HOST}:{port}/readyz", proc, 60, v.name)
            problems = harness.sanity(base, self.args.model)
            for problem in problems:
                self.say(f"warning: {v.name} sanity check: {problem}")
            out = self.measure(v.name, base, {"mock": self.mock_pid, "server": proc.pid})
            out["sanity_problems"] = problems
            out["command"] = shlex.join(argv)
            if proc.poll() is not None:
                raise RuntimeError(f"{v.name} exited with status {proc.returncode} while measured")
        finally:
            self.kids.stop(proc)
        return out

    def run(self, variants: list[Variant]) -> dict[str, Any]:
        a = self.args
        self.start_mock()
        idle = harness.busy_fraction(1.0)
        if idle > 0.1:
            self.say(f"warning: before starting, this machine was {idle * 100:.0f}% busy")
        for v in variants:
            (self.results_dir / log_name(v.name)).write_bytes(b"")
        rounds: list[dict[str, Any]] = []
        started = time.monotonic()
        for i in range(a.rounds):
            self.say(f"round {i + 1}/{a.rounds}")
            one: dict[str, Any] = {
                "direct": self.measure("direct", self.upstream, {"mock": self.mock_pid})
            }
            for v in variants:
                one[v.name] = self.variant_round(v)
            rounds.append(one)
        doc: dict[str, Any] = {
            "busy_before_start": round(idle, 3),
            "elapsed_s": round(time.monotonic() - started, 1),
            "variants": {v.name: {"kind": v.kind, **v.info} for v in variants},
            "rounds": rounds,
        }
        for v in variants:
            text = (self.results_dir / log_name(v.name)).read_text(errors="replace")
            bad = [ln for ln in text.splitlines() if any(m in ln for m in LOG_MARKERS)]
            doc["variants"][v.name]["log_error_lines"] = len(bad)
            doc["variants"][v.name]["log_first_errors"] = bad[:5]
        return doc


# -- summary and tables ------------------------------------------------------------------------
def summarize(doc: dict[str, Any], names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Per variant and phase: medians over rounds of the figures, added = variant - direct of
    the same round, and ratios of those medians to the baseline's."""
    rounds = doc["rounds"]
    phases = [f"seq_{s}" for s, _ in SIZES] + ["open", "stream"]
    summary: dict[str, Any] = {}
    for name in ["direct", *names]:
        per: dict[str, Any] = {}
        for ph in phases:
            keys = ("latency_ms",) + (("ttft_ms",) if ph == "stream" else ())
            cell: dict[str, Any] = {}
            for key in keys:
                tag = "" if key == "latency_ms" else "ttft_"
                for p in ("p50", "p99"):
                    vals = [r[name][ph][key][p] for r in rounds]
                    cell[f"{tag}{p}"] = med(vals)
                    if name != "direct":
                        diffs = [r[name][ph][key][p] - r["direct"][ph][key][p] for r in rounds]
                        cell[f"{tag}added_{p}"] = med(diffs)
                        cell[f"{tag}added_{p}_rounds"] = [round(d, 3) for d in diffs]
            who = "mock" if name == "direct" else "server"
            cell["cpu_us"] = med([r[name][ph]["cpu"].get(f"{who}_us_per_request") for r in rounds])
            cell["cpu_us_rounds"] = [
                r[name][ph]["cpu"].get(f"{who}_us_per_request") for r in rounds
            ]
            if name != "direct":
                cell["background_us"] = med(
                    [r[name][ph]["cpu"].get("server_background_us_per_request") for r in rounds]
                )
            cell["errors"] = sum(r[name][ph]["errors"] for r in rounds)
            cell["other_max"] = max(r[name][ph]["cpu"]["other_cpu_fraction"] for r in rounds)
            per[ph] = cell
        if name != "direct":
            per_event = []
            for r in rounds:
                s = r[name]["stream"]["cpu"].get("server_us_per_request")
                t = r[name]["seq_tiny"]["cpu"].get("server_us_per_request")
                per_event.append(None if s is None or t is None else (s - t) / args.chunks)
            per["stream"]["us_per_event"] = med(per_event)
            if all("ceiling" in r[name] for r in rounds):
                per["ceiling"] = {
                    "max_rps": med([r[name]["ceiling"]["max_rps"] for r in rounds]),
                    "max_rps_rounds": [r[name]["ceiling"]["max_rps"] for r in rounds],
                }
        summary[name] = per
    base = summary.get(args.baseline)
    if base is not None:
        for name in names:
            per = summary[name]
            for ph in phases:
                c, b = per[ph], base[ph]
                c["x_added_p50"] = ratio(c["added_p50"], b["added_p50"], MIN_ADDED_MS)
                c["x_added_p99"] = ratio(c["added_p99"], b["added_p99"], MIN_ADDED_MS)
                c["x_cpu_us"] = ratio(c["cpu_us"], b["cpu_us"])
                if ph == "stream":
                    c["x_us_per_event"] = ratio(c["us_per_event"], b["us_per_event"])
                    c["x_ttft_added_p50"] = ratio(
                        c["ttft_added_p50"], b["ttft_added_p50"], MIN_ADDED_MS
                    )
                    c["x_ttft_added_p99"] = ratio(
                        c["ttft_added_p99"], b["ttft_added_p99"], MIN_ADDED_MS
                    )
            if "ceiling" in per and "ceiling" in base:
                per["ceiling"]["x_max_rps"] = ratio(
                    per["ceiling"]["max_rps"], base["ceiling"]["max_rps"]
                )
    return summary


def num(v: float | None, fmt: str = ".3f", sign: bool = False) -> str:
    """A table cell; fewer decimals for large values so that columns stay apart."""
    if v is None:
        return "-"
    if fmt == ".3f" and abs(v) >= 100:
        fmt = ".0f" if abs(v) >= 1000 else ".1f"
    return format(v, ("+" if sign else "") + fmt)


def times(v: float | None) -> str:
    return "-" if v is None else f"x{v:.2f}"


def print_tables(summary: dict[str, Any], names: list[str], args: argparse.Namespace) -> None:
    has_base = args.baseline in names
    w = max(10, *(len(n) + 2 for n in names))
    titles = {
        "seq_tiny": "1. one at a time, non-streaming, tiny body",
        "seq_4k": "1. one at a time, non-streaming, 4 KB user message",
        "seq_40k": "1. one at a time, non-streaming, 40 KB user message",
        "open": f"2. open loop at {args.open_rate:g} req/s, non-streaming",
    }
    rx = "x" + args.baseline
    for ph, title in titles.items():
        print(f"\n{title} (ms; CPU in us per request; medians over {args.rounds} round(s))")
        print(
            f"  {'variant':<{w}}{'p50':>8}{'p99':>8}{'+p50':>9}{rx:>10}{'+p99':>9}{rx:>10}"
            f"{'CPU us':>9}{rx:>10}{'bg us':>7}{'err':>5}{'other':>7}"
        )
        for name in ["direct", *names]:
            c = summary[name][ph]
            print(
                f"  {name:<{w}}{num(c['p50']):>8}{num(c['p99']):>8}"
                f"{num(c.get('added_p50'), sign=True):>9}{times(c.get('x_added_p50')):>10}"
                f"{num(c.get('added_p99'), sign=True):>9}{times(c.get('x_added_p99')):>10}"
                f"{num(c['cpu_us'], '.0f'):>9}{times(c.get('x_cpu_us')):>10}"
                f"{num(c.get('background_us'), '.0f'):>7}"
                f"{c['errors']:>5}{c['other_max'] * 100:>6.0f}%"
            )
    print(
        f"\n3. one {args.chunks}-chunk stream at a time (ms, whole stream and time to first"
        " token; CPU in us per stream and, derived, per relayed event)"
    )
    print(
        f"  {'variant':<{w}}{'p50':>8}{'+p50':>9}{'+p99':>9}{rx:>10}{'+ttft99':>9}"
        f"{'CPU us':>9}{rx:>10}{'bg us':>7}{'us/event':>9}{rx:>10}{'err':>5}{'other':>7}"
    )
    for name in ["direct", *names]:
        c = summary[name]["stream"]
        print(
            f"  {name:<{w}}{num(c['p50']):>8}{num(c.get('added_p50'), sign=True):>9}"
            f"{num(c.get('added_p99'), sign=True):>9}{times(c.get('x_added_p99')):>10}"
            f"{num(c.get('ttft_added_p99'), sign=True):>9}"
            f"{num(c['cpu_us'], '.0f'):>9}{times(c.get('x_cpu_us')):>10}"
            f"{num(c.get('background_us'), '.0f'):>7}"
            f"{num(c.get('us_per_event'), '.1f'):>9}{times(c.get('x_us_per_event')):>10}"
            f"{c['errors']:>5}{c['other_max'] * 100:>6.0f}%"
        )
    print(
        "  us/event = (CPU per stream - CPU per tiny request) / chunks: approximate (a stream"
        " and a request differ in more than their events)"
    )
    print(
        "  bg us: CPU of Relay's writer threads (ledger, access lines) per request, included in"
        " CPU us; measured in the one-at-a-time phases"
    )
    if args.ceiling:
        print(f"\n4. ceiling: highest passing rate of run.py's search (req/s, {rx})")
        for name in names:
            c = summary[name].get("ceiling")
            if c:
                rounds = ", ".join(f"{v:g}" for v in c["max_rps_rounds"])
                best = f"{c['max_rps']:g}" if c["max_rps"] else f"<{args.search_start:g}"
                print(
                    f"  {name:<{w}}{best:>8}{times(c.get('x_max_rps')):>10}"
                    f"   (rounds: {rounds}; 0: the first step failed)"
                )
    if has_base:
        print(
            f"\n{rx}: the variant's median / {args.baseline}'s ('+' columns: added over direct);"
            f" '-' where {args.baseline}'s added latency is under {MIN_ADDED_MS:g} ms"
        )
    else:
        print(f"\nnote: no variant named {args.baseline!r}: no ratios")
    noisy = max(
        (c["other_max"] for per in summary.values() for c in per.values() if "other_max" in c),
        default=0.0,
    )
    if noisy > 0.1:
        print(
            f"\nwarning: other processes used up to {noisy * 100:.0f}% of a CPU during a phase"
            " (column 'other'): the figures are noisy"
        )


# -- command line ------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n", 1)[0],
        epilog="variants: bare | relay | relay@REV | NAME=COMMAND (see benches/README.md)",
    )
    p.add_argument("variants", nargs="+", help="what to measure, in this order each round")
    p.add_argument("--rounds", type=int, default=None, help="turns through all (default 2)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny counts, one round")
    p.add_argument("--baseline", default="bare", help="the variant ratios are taken to")
    p.add_argument("--requests", type=int, default=2000, help="sequential requests per size")
    p.add_argument("--warmup-requests", type=int, default=200)
    p.add_argument("--streams", type=int, default=1000, help="sequential streams")
    p.add_argument("--warmup-streams", type=int, default=100)
    p.add_argument("--chunks", type=int, default=20, help="content chunks per mock stream")
    p.add_argument("--chunk-gap-ms", type=float, default=0.0, help="mock gap between chunks")
    p.add_argument("--open-rate", type=float, default=1000.0, help="open-loop req/s")
    p.add_argument("--open-duration", type=float, default=10.0)
    p.add_argument("--open-warmup", type=float, default=2.0)
    p.add_argument("--ceiling", action="store_true", help="also run the throughput search")
    p.add_argument("--search-start", type=float, default=1000.0)
    p.add_argument("--search-step", type=float, default=500.0)
    p.add_argument("--search-max", type=float, default=10000.0)
    p.add_argument("--search-duration", type=float, default=10.0)
    p.add_argument("--search-warmup", type=float, default=2.0)
    p.add_argument("--p99-limit-ms", type=float, default=50.0)
    p.add_argument("--min-rate-fraction", type=float, default=0.95)
    p.add_argument("--max-error-fraction", type=float, default=0.01)
    p.add_argument("--gateway-cpu", type=int, default=0, help="CPU of each variant's server")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU of the mock and the clients")
    p.add_argument("--model", default="bench-model")
    p.add_argument("--results-dir", default=str(HERE / "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.warmup_requests = 200, 20
        args.streams, args.warmup_streams = 100, 10
        args.open_duration, args.open_warmup = 2.0, 1.0
        args.search_duration, args.search_warmup = 2.0, 1.0
        args.search_step = max(args.search_step, 1000.0)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sequential"]:
        return sequential_main(argv[1:])
    args = parse_args(argv)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC)
    try:
        variants = [parse_variant(s) for s in args.variants]
        names = [v.name for v in variants]
        if "direct" in names or len(set(names)) != len(names):
            raise RuntimeError(f"variant names must be unique and not 'direct': {names}")
        for v in variants:
            if v.kind == "relay":
                check_import(v)
        print(f"compare: {', '.join(names)}; {args.rounds} round(s); {stamp:%Y-%m-%d %H:%M} UTC")
        with harness.children() as kids, tempfile.TemporaryDirectory(prefix="relay-cmp-") as tmp:
            if not kids.cpu_ok:
                print("warning: fewer than 2 CPUs or no sched_setaffinity: nothing is pinned")
            doc = Bench(args, kids, Path(tmp)).run(variants)
    except KeyboardInterrupt:
        print("\ninterrupted: children stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = summarize(doc, names, args)
    doc = {
        "date": stamp.isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": harness.machine(),
        "settings": vars(args),
        "pinning": {"servers": args.gateway_cpu, "mock_and_clients": args.client_cpu},
        "summary": summary,
        **doc,
    }
    print_tables(summary, names, args)
    for name, info in doc["variants"].items():
        if info.get("log_error_lines"):
            print(f"warning: {info['log_error_lines']} error lines in {log_name(name)}")
    out = results_dir / f"compare-{stamp:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    print(f"\n{doc['elapsed_s']:.0f} s; wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
