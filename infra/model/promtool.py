"""`python -m infra.model.promtool`: the alert rules' unit tests, as `./tox -e lint` runs them.

Renders `alerts.yaml` on each stage's clock (AWS's as written; the emulators' a tenth of it, see
`infra.model.alerting`), scales `alerts_test.yaml` by the same factor (every test's sample `interval`,
`evaluation_interval` and `eval_time`), and runs `promtool test rules` over each, so every alert is shown
silent just before its `for:` boundary and firing at it on both clocks. It also fails when an alert of
`alerts.yaml` has no test.

promtool is Debian's `prometheus` package's (`apt-get install prometheus`, which `.ci/run` does). Without
it the check is skipped with one line saying so, except in CI (`CI` set), where it fails: CI must not let
untested rules through.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from infra.model import alerting
from infra.settings import EMULATOR_ALERT_TIME_SCALE

TESTS_FILE = Path(__file__).with_name("alerts_test.yaml")
SCALES = {"aws": 1.0, "emulators": EMULATOR_ALERT_TIME_SCALE}
TIMEOUT_SECONDS = 120


def scaled_tests(document: dict[str, Any], scale: float) -> dict[str, Any]:
    """The promtool test document on the clock `scale`: its sample intervals and evaluation times."""
    if scale == 1:
        return document
    document["evaluation_interval"] = alerting.scaled(document.get("evaluation_interval", "1m"), scale)
    for test in document.get("tests") or []:
        test["interval"] = alerting.scaled(test.get("interval", "1m"), scale)
        for key in ("alert_rule_test", "promql_expr_test"):
            for case in test.get(key) or []:
                case["eval_time"] = alerting.scaled(case["eval_time"], scale)
    return document


def untested(rules: dict[str, Any], tests: dict[str, Any]) -> list[str]:
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tested = {
        case["alertname"] for test in tests.get("tests") or [] for case in test.get("alert_rule_test") or []
    }
    return sorted(names - tested)


def run(promtool: str, stage: str, scale: float, workdir: Path) -> tuple[bool, str]:
    rules = alerting.rules(scale)
    tests = scaled_tests(yaml.safe_load(TESTS_FILE.read_text()), scale)
    missing = untested(rules, tests)
    if missing:
        return False, f"alerts without a test in {TESTS_FILE.name}: {', '.join(missing)}"
    directory = workdir / stage
    directory.mkdir()
    (directory / alerting.ALERTS_FILE.name).write_text(alerting.dump_rules(rules))
    (directory / TESTS_FILE.name).write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run(
        [promtool, "test", "rules", TESTS_FILE.name],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.model.promtool", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--promtool", default="promtool", help="the promtool to run (default: from PATH)")
    args = parser.parse_args(argv)
    promtool = shutil.which(args.promtool)
    if promtool is None:
        required = bool(os.environ.get("CI"))
        print(
            f"infra.model.promtool: {'failed' if required else 'skipped'}: no `{args.promtool}` here, so the "
            "alert rules are untested: install Debian's prometheus package (apt-get install prometheus), "
            "as .ci/run does",
            file=sys.stderr,
        )
        return 1 if required else 0
    failed = False
    with tempfile.TemporaryDirectory(prefix="promtool-") as workdir:
        for stage, scale in SCALES.items():
            ok, output = run(promtool, stage, scale, Path(workdir))
            count = len(alerting.alert_names())
            if ok:
                print(f"alert rules on the {stage}' clock ({scale:g}): {count} rules, every test passes")
            else:
                failed = True
                print(
                    f"alert rules on the {stage}' clock ({scale:g}) fail their tests:\n{output}",
                    file=sys.stderr,
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
