"""A short headless locust run (``benches/locust_run.py``, what ``make locust`` runs) through a
real gateway to the fake provider: every kind of request of the mix is made, and none fails
unexpectedly. Bad requests are expected to be refused: they count apart, not as failures.
Figures are printed by the run, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "chat short",
    "chat long",
    "chat stream",
    "chat stream (TTFT)",
    "chat tools",
    "chat repeated (miss)",
    "chat repeated (hit)",
    "bad request (expected 4xx)",
}


@pytest.mark.integration
def test_a_short_locust_run_has_no_unexpected_failure(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    command = [sys.executable, str(ROOT / "benches" / "locust_run.py")]
    command += ["--users", "4", "--spawn-rate", "4", "--run-time", "6s"]
    command += ["--upstream-latency-ms", "5", "--summary-json", str(summary_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    output = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, output
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["unexpected_failures"] == 0, summary["errors"]
    assert summary["exceptions"] == 0, output
    made = {name for name, fig in summary["requests"].items() if fig["requests"] > 0}
    assert made >= KINDS, f"kinds never made: {KINDS - made}"
    # Every bad request was refused as it should be, and counted apart.
    assert (
        summary["expected_errors"] == summary["requests"]["bad request (expected 4xx)"]["requests"]
    )
    assert "p99" in result.stdout and "unexpected failures: 0" in result.stdout, output
