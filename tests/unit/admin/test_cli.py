"""``relay tenants|keys|usage|db`` against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import re

import pytest

from relay.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_round_trip(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("RELAY_CONFIG", raising=False)
    assert run(capsys, "db", "upgrade")[1].strip() == "applied migrations [1, 2, 3, 4, 5]"
    assert run(capsys, "db", "upgrade")[1].strip() == "the schema is up to date"

    code, out, _ = run(capsys, "tenants", "create", "search", "--rpm", "100", "--models", "a,b")
    assert code == 0
    first_key = re.search(r"api key \(shown once\): (gw-sk-\w{43})", out)
    assert first_key
    code, out, _ = run(capsys, "tenants", "list")
    header, row = out.strip().splitlines()
    assert header.split() == [
        "id",
        "organization",
        "name",
        "rpm",
        "tpm",
        "budget_usd",
        "period",
        "alert_at",
        "models",
        "created",
    ]
    assert row.split()[1:8] == ["default", "search", "100", "-", "-", "month", "0.8"]
    assert "a,b" in row

    code, out, _ = run(
        capsys, "keys", "create", "--tenant", "search", "--expires-days", "1",
        "--budget", "2.5", "--budget-period", "day", "--budget-alert-ratio", "0.5",
    )  # fmt: skip
    assert code == 0 and "api key (shown once): gw-sk-" in out
    code, out, _ = run(capsys, "keys", "list", "--tenant", "search")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and all("active" in line for line in lines[1:])
    assert sum("2.5/day" in line for line in lines) == 1
    assert first_key.group(1) not in out and first_key.group(1)[:14] in out
    key_id = lines[1].split()[0]
    code, out, _ = run(capsys, "keys", "revoke", key_id)
    assert code == 0 and key_id in out
    assert "revoked" in run(capsys, "keys", "list")[1]

    code, _, err = run(capsys, "keys", "revoke", "key_nope")
    assert code == 1 and "no key with id 'key_nope'" in err
    code, _, err = run(capsys, "keys", "create", "--tenant", "nope")
    assert code == 1 and "no tenant 'nope'" in err
    code, out, _ = run(capsys, "usage", "--by", "tenant,day")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["tenant", "day", "requests"]


def test_cli_options_are_checked_like_the_admin_api(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value the database would refuse is an error naming the option, not a traceback."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("RELAY_CONFIG", raising=False)
    for argv, message in (
        (["--rpm", str(2**64)], "error: --rpm: expected `int` <= 2147483647"),
        (["--tpm", str(2**63)], "error: --tpm: expected `int` <= 9223372036854775807"),
        (["--rpm", "-5"], "error: --rpm: expected `int` >= 0"),
        (
            ["--budget-period", "week"],
            "error: --budget-period: invalid enum value 'week'; expected one of day, month, total",
        ),
        (["--budget-alert-ratio", "1.5"], "error: --budget-alert-ratio: expected `float` <= 1.0"),
    ):
        code, _, err = run(capsys, "tenants", "create", "svc", *argv)
        assert (code, err.strip()) == (1, message)
    assert run(capsys, "tenants", "create", "svc", "--rpm", str(2**31 - 1))[0] == 0
    code, _, err = run(capsys, "keys", "create", "--tenant", "svc", "--rpm", str(2**31))
    assert (code, err.strip()) == (1, "error: --rpm: expected `int` <= 2147483647")
