"""A headless locust run against a local gateway and a fake provider: what ``make locust`` runs.

It starts the fake OpenAI provider of the tests (``tests/fakes/openai_upstream.py``, a real
aiohttp server; ``--upstream-latency-ms`` makes it wait before each answer, as a provider
does), then ``relay serve`` (``tests/integration/gateway.py``) with one model ``chat`` on it, the
response cache (``mode: deterministic``) and the SQLite ledger, then locust with
``benches/locustfile.py``, headless. It prints p50/p95/p99 and failures per request kind, with
bad requests apart (they are expected to be refused), and exits 1 on any unexpected failure.

    python3 benches/locust_run.py [--users 20] [--spawn-rate 10] [--run-time 30s] [--workers 1]
        [--upstream-latency-ms 20] [--summary-json PATH]

Every process it starts is stopped when it ends, fails or is interrupted. See benches/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.fakes.openai_upstream import start_fake_upstream  # noqa: E402
from tests.integration.gateway import Gateway  # noqa: E402

UPSTREAM_KEY = "sk-locust-upstream"


def gateway_config(upstream_base_url: str, latency_ms: int) -> dict[str, Any]:
    """One model on the fake provider, the cache on, the ledger in the working directory."""
    # The fake answers a model named slow-<ms> after <ms>, otherwise as any other model.
    upstream_model = f"slow-{latency_ms}" if latency_ms > 0 else "gpt-4o-mini"
    return {
        "providers": {
            "fake": {"kind": "openai", "base_url": upstream_base_url, "api_key": UPSTREAM_KEY}
        },
        "models": {
            "chat": {
                "provider": "fake",
                "model": upstream_model,
                "pricing": {"input": 0.15, "output": 0.60},
            }
        },
        "cache": {"mode": "deterministic", "ttl_s": 600},
    }


def run_locust(host: str, args: argparse.Namespace, summary_path: Path) -> int:
    """Locust, headless, until ``--run-time``; its own summary goes to stdout."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--only-summary",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--stop-timeout",
        "10",
        "--host",
        host,
        "--model",
        "chat",
        "--summary-json",
        str(summary_path),
    ]
    # cwd: a directory with no locust.conf, so only these options apply.
    return subprocess.run(command, cwd=summary_path.parent, timeout=None).returncode


def table(summary: dict[str, Any]) -> str:
    """The figures, one line per request kind, then the totals."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    rows = [f"{'request':32} {'count':>7} {'fail':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"]
    for name, fig in [*summary["requests"].items(), ("all requests", summary["total"])]:
        rows.append(
            f"{name:32} {fig['requests']:>7} {fig['failures']:>5} "
            f"{ms(fig['p50_ms']):>7} {ms(fig['p95_ms']):>7} {ms(fig['p99_ms']):>7}"
        )
    rows.append(
        f"unexpected failures: {summary['unexpected_failures']}; "
        f"expected errors (bad requests refused with the right 4xx): {summary['expected_errors']}"
        + (f"; task exceptions: {summary['exceptions']}" if summary["exceptions"] else "")
    )
    rows += [f"  {e['occurrences']} x {e['name']}: {e['error']}" for e in summary["errors"]]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent simulated users")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second")
    parser.add_argument("--run-time", default="30s", help="how long: 30s, 2m, ...")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument(
        "--upstream-latency-ms", type=int, default=20, help="the fake provider's wait per answer"
    )
    parser.add_argument("--summary-json", type=Path, default=None, help="also write it here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="relay-locust-") as scratch:
        tmp = Path(scratch)
        summary_path = tmp / "summary.json"
        with start_fake_upstream(UPSTREAM_KEY) as upstream:
            config = gateway_config(upstream.base_url, args.upstream_latency_ms)
            gateway = Gateway(config, tmp, workers=args.workers)
            try:
                code = run_locust(gateway.url, args, summary_path)
            finally:
                gateway.stop()
            if not summary_path.exists():
                print(f"locust wrote no summary (exit {code})", file=sys.stderr)
                print(gateway.logs()[-3000:], file=sys.stderr)
                return 1
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if args.summary_json is not None:
            args.summary_json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print()
    print(table(summary))
    clean = code == 0 and summary["unexpected_failures"] == 0 and summary["exceptions"] == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
