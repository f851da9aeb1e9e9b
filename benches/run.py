"""Relay's benchmark: added latency over a direct baseline, then maximum throughput.

What ``make bench`` runs. It starts the fake upstream (``mock_upstream.py``) and the gateway
(``python -m relay serve``, one worker), pins them to separate CPUs, and drives both paths with
the open-loop load generator (``loadgen.py``, pinned with the upstream):

1. non-streaming at ``--rate`` (500/s): direct (loadgen -> mock) then gateway
   (loadgen -> relay -> mock); added latency = gateway percentile - direct percentile;
2. streaming at ``--stream-rate`` (100/s): the same for the time to first token (TTFT);
3. a throughput search through the gateway: ``--search-start`` (1000/s) up in steps of
   ``--search-step`` (500/s) until p99 exceeds ``--p99-limit-ms``, fewer than
   ``--min-rate-fraction`` of the offered rate completes, or more than ``--max-error-fraction``
   fail; the highest passing rate is the maximum sustained throughput. The first failing rate
   is then offered directly too, to tell a gateway limit from a load-generator limit.

It prints a table and writes ``benches/results/latest.json``. Every child is started in its own
session and killed (its whole process group) on exit, error or Ctrl-C. See benches/README.md.

    python3 benches/run.py [--quick] [--duration 20] [--warmup 3] [--no-gateway] [--no-search]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"


# -- processes ---------------------------------------------------------------------------------
class Children:
    """Every process this run started; each in its own session, so a group kill reaches all."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cpu_ok = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2

    def start(
        self, argv: Sequence[str], *, cpu: int | None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` pinned to ``cpu`` (inherited by its own children)."""
        pin = cpu if self.cpu_ok else None

        def pre_exec() -> None:
            if pin is not None:
                os.sched_setaffinity(0, {pin})

        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT if log else None,
                preexec_fn=pre_exec,
                start_new_session=True,
                cwd=REPO,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # The group may outlive its leader (granian's workers): make sure it is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every child, newest first."""
        for proc in reversed(list(self.procs)):
            self.stop(proc, grace=5.0)


@contextlib.contextmanager
def children() -> Iterator[Children]:
    """A :class:`Children` that is always cleaned up, on SIGTERM and Ctrl-C too."""
    kids = Children()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield kids
    finally:
        kids.stop_all()
        signal.signal(signal.SIGTERM, previous)


def port_free(port: int) -> bool:
    """True when nothing listens on ``HOST:port`` (connections in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel says is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready at {url} after {timeout:.0f}s ({last})")


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """One blocking POST (for the sanity checks only)."""
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


HZ = os.sysconf("SC_CLK_TCK")


def busy_fraction(seconds: float) -> float:
    """How busy all CPUs together were over the next ``seconds`` (0..1)."""
    before = machine_busy_s()
    time.sleep(seconds)
    return (machine_busy_s() - before) / (seconds * (os.cpu_count() or 1))


def cpu_clock_s(pid: int, thread: bool = False) -> float | None:
    """CPU seconds (user + system) of process ``pid`` (every thread, reaped ones included)
    or of thread ``pid``, read from its kernel CPU clock to the nanosecond; None when that
    clock cannot be read (gone, or not Linux). ``/proc``'s counts are in ticks of 10 ms: 33 us
    a request over a 300-request phase, more than the differences measured here."""
    # Linux's clock id of another process or thread (MAKE_PROCESS_CPUCLOCK and
    # MAKE_THREAD_CPUCLOCK with CPUCLOCK_SCHED, the scheduler's run time).
    clock = ((~pid) << 3) | (6 if thread else 2)
    try:
        return time.clock_gettime(clock)
    except (OSError, OverflowError):
        return None


def _ticks_s(fields: list[str]) -> float:
    """User + system CPU seconds of ``/proc/<pid>/stat`` fields (after the command name)."""
    return (int(fields[11]) + int(fields[12])) / HZ


def _group_pids(pgid: int) -> list[tuple[int, list[str]]]:
    """The live processes of process group ``pgid`` with their ``/proc/<pid>/stat`` fields
    after the command name."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            found.append((int(entry.name), fields))
    return found


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of process group ``pgid``."""
    total = 0.0
    for pid, fields in _group_pids(pgid):
        precise = cpu_clock_s(pid)
        total += precise if precise is not None else _ticks_s(fields)
    return total


def group_threads_cpu_s(pgid: int, prefix: str) -> float:
    """CPU seconds of the threads of process group ``pgid`` whose kernel name starts with
    ``prefix`` (Relay names its writer threads ``relay-...``: relay/background.py)."""
    total = 0.0
    for pid, _ in _group_pids(pgid):
        try:
            tasks = list(os.scandir(Path("/proc", str(pid), "task")))
        except OSError:
            continue
        for task in tasks:
            try:
                if not Path(task.path, "comm").read_text().startswith(prefix):
                    continue
                precise = cpu_clock_s(int(task.name), thread=True)
                if precise is None:
                    stat = Path(task.path, "stat").read_text()
                    precise = _ticks_s(stat.rsplit(")", 1)[1].split())
            except OSError:
                continue
            total += precise
    return total


def machine_busy_s() -> float:
    """CPU seconds spent busy by the whole machine since boot, summed over CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / HZ


def sanity(base: str, model: str) -> list[str]:
    """One JSON and one streamed request; the problems found (empty when both look right)."""
    problems: list[str] = []
    url = base + "/chat/completions"
    msg = [{"role": "user", "content": "hi"}]
    status, body = post(url, {"model": model, "messages": msg})
    if status != 200:
        problems.append(f"json: status {status}: {body[:300]!r}")
    else:
        data = json.loads(body)
        if not data.get("choices") or not data.get("usage"):
            problems.append(f"json: missing choices or usage: {body[:300]!r}")
    status, body = post(url, {"model": model, "messages": msg, "stream": True})
    if status != 200:
        problems.append(f"stream: status {status}: {body[:300]!r}")
    else:
        lines = [ln for ln in body.split(b"\n") if ln.startswith(b"data:")]
        if not lines or lines[-1].strip() != b"data: [DONE]":
            problems.append(f"stream: does not end with data: [DONE]: {body[-200:]!r}")
        if not any(b'"content":"tok' in ln for ln in lines):
            problems.append("stream: no content chunk")
    return problems


# -- load --------------------------------------------------------------------------------------
def run_load(
    kids: Children,
    base: str,
    rate: float,
    *,
    duration: float,
    warmup: float,
    stream: bool,
    cpu: int | None,
    tmp: Path,
    watch: dict[str, int],
) -> dict[str, Any]:
    """One loadgen run as a child process; its JSON report, with the CPU time spent.

    ``watch`` names the process groups (mock, gateway) whose CPU time is measured over the run;
    whatever the machine spent beyond them and the load generator is reported as ``other``.
    """
    out = tmp / f"load-{time.monotonic_ns()}.json"
    argv = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--url",
        base,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--out",
        str(out),
    ]
    if stream:
        argv.append("--stream")
    before = {name: group_cpu_s(pgid) for name, pgid in watch.items()}
    busy0, wall0 = machine_busy_s(), time.monotonic()
    proc = kids.start(argv, cpu=cpu)
    try:
        code = proc.wait(timeout=duration + warmup + 120)
    finally:
        kids.stop(proc)
    wall, busy = time.monotonic() - wall0, machine_busy_s() - busy0
    if code != 0 or not out.exists():
        raise RuntimeError(f"loadgen failed with status {code}: {shlex.join(argv)}")
    report: dict[str, Any] = json.loads(out.read_text())
    sent = rate * (warmup + duration)
    cpu_use: dict[str, float | None] = {"wall_s": round(wall, 3), "loadgen_s": report["cpu_s"]}
    ours = report["cpu_s"]
    for name, pgid in watch.items():
        spent = group_cpu_s(pgid) - before[name]
        if spent < 0:  # a process of the group exited (a crashed worker): unknown
            cpu_use[f"{name}_s"] = cpu_use[f"{name}_us_per_request"] = None
            continue
        ours += spent
        cpu_use[f"{name}_s"] = round(spent, 3)
        cpu_use[f"{name}_us_per_request"] = round(spent / sent * 1e6, 1)
    # Other sessions, the kernel's own work and this script: noise the figures carry.
    cpu_use["other_s"] = round(max(busy - ours, 0.0), 3)
    cpu_use["other_cpu_fraction"] = round(max(busy - ours, 0.0) / wall, 3)
    report["cpu"] = cpu_use
    return report


def passes(report: dict[str, Any], args: argparse.Namespace) -> tuple[bool, str]:
    """Whether a search step sustained its rate, and why not."""
    count = max(report["count"], 1)
    if report["errors"] / count > args.max_error_fraction:
        return False, f"{report['errors']} errors {report['error_kinds']}"
    if report["achieved_rps"] < args.min_rate_fraction * report["target_rps"]:
        return False, f"achieved {report['achieved_rps']:.0f}/s"
    if report["latency_ms"]["p99"] > args.p99_limit_ms:
        return False, f"p99 {report['latency_ms']['p99']:.1f} ms > {args.p99_limit_ms:g} ms"
    return True, ""


def added(direct: dict[str, Any], gateway: dict[str, Any], key: str) -> dict[str, float]:
    """Gateway minus direct at p50/p90/p99 of ``key`` (e.g. ``latency_ms``)."""
    return {
        p: round(gateway[key][p] - direct[key][p], 3)
        for p in ("p50", "p90", "p99")
        if p in gateway[key] and p in direct[key]
    }


def median_added(pairs: list[dict[str, float]]) -> dict[str, float]:
    """Per-percentile median over repeated (direct, gateway) pairs."""
    return {p: round(statistics.median(d[p] for d in pairs), 3) for p in pairs[0]}


# -- output ------------------------------------------------------------------------------------
def fmt_row(name: str, r: dict[str, Any], key: str) -> str:
    lat = r[key]
    return (
        f"  {name:<9}{r['ok']:>8}{r['errors']:>6}{r['achieved_rps']:>10.1f}"
        f"{lat['p50']:>9.3f}{lat['p90']:>9.3f}{lat['p99']:>9.3f}{lat['max']:>9.3f}"
        f"{r['send_lag_ms']['p99']:>9.3f}{cpu_cells(r)}"
    )


def us(value: float | None) -> str:
    """Microseconds for a table cell; '-' when unknown."""
    return "-" if value is None else f"{value:.0f}"


def cpu_cells(r: dict[str, Any]) -> str:
    """Gateway CPU per request (us) and the CPU share of other processes during the run."""
    cpu = r.get("cpu", {})
    gw = cpu.get("gateway_us_per_request") if r.get("path") == "relay" else None
    cell = f"{us(gw):>9}"
    return cell + f"{cpu.get('other_cpu_fraction', 0.0) * 100:>7.0f}%"


HEADER = (
    f"  {'path':<9}{'ok':>8}{'err':>6}{'req/s':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"
    f"{'lag p99':>9}{'gw us/rq':>9}{'other':>8}"
)


def verdict(value: float, limit: float) -> str:
    return f"target < {limit:g} ms: {'met' if value < limit else 'NOT met'}"


def print_pair(
    title: str, runs: list[tuple[dict[str, Any], dict[str, Any] | None]], key: str
) -> None:
    print(f"\n{title}")
    print(HEADER)
    for i, (d, g) in enumerate(runs):
        tag = f"#{i + 1}" if len(runs) > 1 else ""
        print(fmt_row(f"direct{tag}", d, key))
        if g is not None:
            print(fmt_row(f"relay{tag}", g, key))


def machine() -> dict[str, Any]:
    """What this ran on."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    for mod in ("aiohttp", "uvloop", "granian"):
        with contextlib.suppress(Exception):
            info[mod] = __import__(mod).__version__
    with contextlib.suppress(Exception):
        info["git"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return info


def gateway_config(path: Path, port: int, mock_port: int, model: str) -> None:
    """The gateway config of the run: one OpenAI-kind provider pointing at the mock."""
    path.write_text(
        "# written by benches/run.py\n"
        f"server: {{host: {HOST}, port: {port}, workers: 1}}\n"
        "providers:\n"
        f'  mock: {{kind: openai, base_url: "http://{HOST}:{mock_port}/v1", '
        'api_key: "sk-bench"}\n'
        "models:\n"
        f"  {model}: {{provider: mock, pricing: {{input: 1.0, output: 2.0}}}}\n"
    )


def gateway_importable() -> str | None:
    """None when ``relay.app`` imports with this interpreter, else the error."""
    proc = subprocess.run(
        [sys.executable, "-c", "import relay.app"], capture_output=True, text=True, check=False
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="short smoke run (~5 s per phase)")
    p.add_argument("--duration", type=float, default=20.0, help="recorded seconds per phase")
    p.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds per phase")
    p.add_argument("--rate", type=float, default=500.0, help="non-streaming req/s")
    p.add_argument("--stream-rate", type=float, default=100.0, help="streams/s")
    p.add_argument("--repeat", type=int, default=1, help="alternate direct/gateway N times")
    p.add_argument("--chunks", type=int, default=20, help="content chunks per mock stream")
    p.add_argument("--chunk-gap-ms", type=float, default=5.0, help="mock gap between chunks")
    p.add_argument("--no-gateway", action="store_true", help="direct baseline only")
    p.add_argument("--no-search", action="store_true", help="skip the throughput search")
    p.add_argument(
        "--search-direct", action="store_true", help="also search the direct path's ceiling"
    )
    p.add_argument("--search-start", type=float, default=1000.0)
    p.add_argument("--search-step", type=float, default=500.0)
    p.add_argument("--search-max", type=float, default=10000.0)
    p.add_argument("--search-duration", type=float, default=10.0)
    p.add_argument("--search-warmup", type=float, default=2.0)
    p.add_argument("--p99-limit-ms", type=float, default=50.0)
    p.add_argument("--min-rate-fraction", type=float, default=0.95)
    p.add_argument("--max-error-fraction", type=float, default=0.01)
    p.add_argument("--mock-port", type=int, default=9101)
    p.add_argument("--gateway-port", type=int, default=8080)
    p.add_argument("--gateway-cpu", type=int, default=0, help="CPU of the gateway")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU of the mock and the loadgen")
    p.add_argument("--model", default="bench-model")
    p.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 5.0, 2.0
        args.search_duration, args.search_warmup = 4.0, 1.0
    return args


# -- main --------------------------------------------------------------------------------------
def bench(args: argparse.Namespace, kids: Children, tmp: Path) -> dict[str, Any]:
    """Every phase; the results document."""
    results_dir = Path(args.out).parent
    results_dir.mkdir(parents=True, exist_ok=True)
    client_cpu = args.client_cpu if kids.cpu_ok else None
    gateway_cpu = args.gateway_cpu if kids.cpu_ok else None
    if not kids.cpu_ok:
        print("warning: fewer than 2 CPUs or no sched_setaffinity: nothing is pinned")

    for name in ("mock_port", "gateway_port"):
        port = getattr(args, name)
        if not port_free(port):
            setattr(args, name, free_port())
            print(f"note: port {port} is in use; using {getattr(args, name)} instead")

    mock_argv = [
        sys.executable,
        str(HERE / "mock_upstream.py"),
        "--host",
        HOST,
        "--port",
        str(args.mock_port),
        "--chunks",
        str(args.chunks),
        "--chunk-gap-ms",
        str(args.chunk_gap_ms),
    ]
    mock = kids.start(mock_argv, cpu=client_cpu, log=results_dir / "mock.log")
    watch = {"mock": mock.pid}
    direct = f"http://{HOST}:{args.mock_port}/v1"
    wait_http(direct.removesuffix("/v1") + "/healthz", mock, 10, "mock upstream")

    idle_busy = busy_fraction(1.0)
    if idle_busy > 0.1:
        print(
            f"warning: before starting, this machine was {idle_busy * 100:.0f}% busy"
            " (of all CPUs): other work will add noise"
        )
    doc: dict[str, Any] = {
        "busy_before_start": round(idle_busy, 3),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "pinning": {"gateway": gateway_cpu, "mock": client_cpu, "loadgen": client_cpu},
    }

    relay: str | None = None
    if not args.no_gateway:
        problem = gateway_importable()
        if problem:
            raise RuntimeError(f"the gateway does not import ({problem}); try --no-gateway")
        cfg = tmp / "relay-bench.yaml"
        gateway_config(cfg, args.gateway_port, args.mock_port, args.model)
        gw_argv = [sys.executable, "-m", "relay", "serve", "--config", str(cfg)]
        gw_argv += ["--port", str(args.gateway_port), "--workers", "1"]
        gw_log = results_dir / "gateway.log"
        gw_log.write_bytes(b"")
        gateway = kids.start(gw_argv, cpu=gateway_cpu, log=gw_log)
        watch["gateway"] = gateway.pid
        relay = f"http://{HOST}:{args.gateway_port}/v1"
        wait_http(relay.removesuffix("/v1") + "/readyz", gateway, 60, "gateway")
        doc["gateway_command"] = shlex.join(gw_argv)
        problems = sanity(relay, args.model)
        doc["sanity_problems"] = problems
        for problem in problems:
            print(f"warning: gateway sanity check: {problem}")

    def load(
        base: str, rate: float, stream: bool, duration: float, warmup: float
    ) -> dict[str, Any]:
        label = f"{'relay ' if base == relay else 'direct'} {'stream' if stream else 'json  '}"
        print(f"  running {label} at {rate:g}/s for {warmup:g}+{duration:g} s ...", flush=True)
        report = run_load(
            kids,
            base,
            rate,
            duration=duration,
            warmup=warmup,
            stream=stream,
            cpu=client_cpu,
            tmp=tmp,
            watch=watch,
        )
        report["path"] = "relay" if base == relay else "direct"
        return report

    print(f"Relay benchmark: {doc['date']}  {doc['machine'].get('cpu_model', '')}")
    print(f"  pinning: gateway CPU {gateway_cpu}, mock + loadgen CPU {client_cpu}")
    phases: dict[str, list[dict[str, Any]]] = {
        "direct_json": [],
        "gateway_json": [],
        "direct_stream": [],
        "gateway_stream": [],
    }
    for stream, rate in ((False, args.rate), (True, args.stream_rate)):
        kind = "stream" if stream else "json"
        for _ in range(args.repeat):
            phases[f"direct_{kind}"].append(load(direct, rate, stream, args.duration, args.warmup))
            if relay:
                phases[f"gateway_{kind}"].append(
                    load(relay, rate, stream, args.duration, args.warmup)
                )
    doc["runs"] = phases

    summary: dict[str, Any] = {}
    if relay:
        json_pairs = list(zip(phases["direct_json"], phases["gateway_json"], strict=True))
        stream_pairs = list(zip(phases["direct_stream"], phases["gateway_stream"], strict=True))
        summary["added_latency_ms"] = median_added(
            [added(d, g, "latency_ms") for d, g in json_pairs]
        )
        summary["added_service_ms"] = median_added(
            [added(d, g, "service_ms") for d, g in json_pairs]
        )
        summary["added_ttft_ms"] = median_added([added(d, g, "ttft_ms") for d, g in stream_pairs])
        summary["added_ttft_service_ms"] = median_added(
            [added(d, g, "ttft_service_ms") for d, g in stream_pairs]
        )
        summary["added_stream_total_ms"] = median_added(
            [added(d, g, "latency_ms") for d, g in stream_pairs]
        )
        for kind in ("json", "stream"):
            values = [r["cpu"]["gateway_us_per_request"] for r in phases[f"gateway_{kind}"]]
            values = [v for v in values if v is not None]
            summary[f"gateway_us_per_request_{kind}"] = (
                statistics.median(values) if values else None
            )
        summary["gateway_errors"] = sum(
            r["errors"] for r in phases["gateway_json"] + phases["gateway_stream"]
        )

    def search(base: str) -> tuple[float, list[dict[str, Any]], float | None]:
        """Step the rate up until a step fails: the best rate, the steps, the failing rate."""
        steps: list[dict[str, Any]] = []
        best, rate = 0.0, args.search_start
        while rate <= args.search_max:
            r = load(base, rate, False, args.search_duration, args.search_warmup)
            ok, why = passes(r, args)
            steps.append(
                {"rate": rate, "pass": ok, "why": why}
                | {
                    "achieved_rps": r["achieved_rps"],
                    "p50": r["latency_ms"]["p50"],
                    "p99": r["latency_ms"]["p99"],
                    "errors": r["errors"],
                    "gateway_us_per_request": r["cpu"].get("gateway_us_per_request"),
                    "other_cpu_fraction": r["cpu"]["other_cpu_fraction"],
                }
            )
            doc.setdefault("search_runs", []).append(r)
            if not ok:
                return best, steps, rate
            best = rate
            rate += args.search_step
        return best, steps, None

    if relay and not args.no_search:
        best, steps, failed_at = search(relay)
        summary["max_throughput_rps"] = best
        summary["search"] = steps
        if failed_at is not None:
            r = load(direct, failed_at, False, args.search_duration, args.search_warmup)
            ok, why = passes(r, args)
            summary["direct_at_failed_rate"] = {
                "rate": failed_at,
                "pass": ok,
                "why": why,
                "achieved_rps": r["achieved_rps"],
                "p50": r["latency_ms"]["p50"],
                "p99": r["latency_ms"]["p99"],
            }
            doc["direct_at_failed_rate_run"] = r
    if args.search_direct:
        best, steps, _ = search(direct)
        summary["direct_max_throughput_rps"] = best
        summary["direct_search"] = steps

    if relay:
        log_text = (results_dir / "gateway.log").read_text(errors="replace")
        markers = ('"level":"error"', "Traceback", "[ERROR]", "Respawning")
        bad = [ln for ln in log_text.splitlines() if any(m in ln for m in markers)]
        summary["gateway_log_error_lines"] = len(bad)
        summary["gateway_log_first_errors"] = bad[:5]
    doc["summary"] = summary
    report(args, doc)
    return doc


def report(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """The human-readable table."""
    runs, summary = doc["runs"], doc["summary"]

    def pairs(kind: str) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        gw = runs[f"gateway_{kind}"] or [None] * len(runs[f"direct_{kind}"])
        return list(zip(runs[f"direct_{kind}"], gw, strict=True))

    d = args.duration
    print_pair(
        f"Non-streaming at {args.rate:g} req/s, {d:g} s recorded", pairs("json"), "latency_ms"
    )
    print_pair(
        f"Streaming at {args.stream_rate:g} streams/s, {d:g} s recorded: time to first token",
        pairs("stream"),
        "ttft_ms",
    )
    if "added_latency_ms" in summary:
        a, s = summary["added_latency_ms"], summary["added_service_ms"]
        t, ts = summary["added_ttft_ms"], summary["added_ttft_service_ms"]
        print("\nAdded by the gateway (gateway - direct, ms; from the intended send time)")
        print(f"  non-streaming p50 {a['p50']:+.3f}  p99 {a['p99']:+.3f}   {verdict(a['p99'], 1)}")
        print(f"  TTFT          p50 {t['p50']:+.3f}  p99 {t['p99']:+.3f}   {verdict(t['p99'], 2)}")
        print("  (from the actual send, i.e. without the load generator's timer jitter:")
        print(f"   non-streaming p50 {s['p50']:+.3f} p99 {s['p99']:+.3f};")
        print(f"   TTFT p50 {ts['p50']:+.3f} p99 {ts['p99']:+.3f})")
    for key, what in (("search", "through the gateway"), ("direct_search", "direct (harness)")):
        if key not in summary:
            continue
        print(f"\nThroughput search {what} (non-streaming, {args.search_duration:g} s per step)")
        print(
            f"  {'rate':>7}{'req/s':>9}{'p50':>9}{'p99':>10}{'err':>6}"
            f"{'gw us/rq':>9}{'other':>7}  result"
        )
        for s in summary[key]:
            result = "ok" if s["pass"] else f"FAIL: {s['why']}"
            print(
                f"  {s['rate']:>7.0f}{s['achieved_rps']:>9.1f}{s['p50']:>9.3f}{s['p99']:>10.3f}"
                f"{s['errors']:>6}{us(s['gateway_us_per_request']):>9}"
                f"{s['other_cpu_fraction'] * 100:>6.0f}%  {result}"
            )
        best = summary["max_throughput_rps" if key == "search" else "direct_max_throughput_rps"]
        print(f"  max sustained: {best:g} req/s")
        if key == "search" and "direct_at_failed_rate" in summary:
            f = summary["direct_at_failed_rate"]
            note = (
                "so the gateway was the limit"
                if f["pass"]
                else f"the load generator is the limit ({f['why']})"
            )
            print(
                f"  direct at {f['rate']:g}/s: achieved {f['achieved_rps']:.0f}/s, "
                f"p99 {f['p99']:.3f} ms: {'ok' if f['pass'] else 'FAIL'}, {note}"
            )
    j, st = summary.get("gateway_us_per_request_json"), summary.get("gateway_us_per_request_stream")
    if j is not None and st is not None:
        print(
            f"\nGateway CPU per request at these rates: {j:.0f} us non-streaming, {st:.0f} us per"
            f" {args.chunks}-chunk stream (it falls as the rate rises: see the search's column)"
        )
    everything = [r for rs in runs.values() for r in rs] + doc.get("search_runs", [])
    noisy = max((r["cpu"]["other_cpu_fraction"] for r in everything), default=0.0)
    if noisy > 0.1:
        print(
            f"\nwarning: other processes used up to {noisy * 100:.0f}% of a CPU during a phase"
            " (column 'other'): this machine was not idle and the figures are noisy"
        )
    if summary.get("gateway_errors"):
        print(f"\nwarning: {summary['gateway_errors']} failed requests through the gateway")
    if summary.get("gateway_log_error_lines"):
        print(f"warning: {summary['gateway_log_error_lines']} error lines in gateway.log")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 on success (targets are reported, not enforced)."""
    args = parse_args(argv)
    try:
        with children() as kids, tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
            doc = bench(args, kids, Path(tmp))
    except KeyboardInterrupt:
        print("\ninterrupted: children stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
