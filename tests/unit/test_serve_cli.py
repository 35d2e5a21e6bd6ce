"""A service's command line: no arguments, environment variables only, `--help` lists them."""

from __future__ import annotations

import subprocess
import sys


def run_service(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.checkout", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def test_help_lists_every_variable_with_its_default() -> None:
    result = run_service("--help")
    assert result.returncode == 0
    assert "PAYMENT_URL" in result.stdout
    assert "'kafka:9092'" in result.stdout


def test_an_argument_is_refused_with_the_usage() -> None:
    result = run_service("--port", "80")
    assert result.returncode == 2
    assert "configured by environment variables" in result.stderr


def test_a_bad_variable_stops_start_up_with_one_line_naming_it() -> None:
    result = run_service(env={"PORT": "eighty"})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("checkout: invalid configuration: PORT: Input should be a valid integer")
