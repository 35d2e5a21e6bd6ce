"""pytest options and reporting of the stage the integration suite runs against.

    pytest tests/integration                     # the local stage: up, build, deploy, suite, down
    pytest tests/integration --keep              # ... and leave the shop running; print its URLs
    pytest tests/integration --long              # ... with the long proofs (autoscaling, every release)
    pytest tests/integration --stage aws         # a real AWS account (see stages/aws.py)
    pytest tests/integration --stage kind        # kind and an AWS emulator container (needs Docker)

The run ends with the time each phase took (also written to `<logs>/phases.json`), and what each load
of a test did: requests, failures, orders placed (also in `<logs>/loads.json`). SIGTERM is turned
into an interrupt, so that a run stopped by tox or CI still takes its stage down.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict
from types import FrameType

import pytest
from rich.console import Console

from tests.integration.load import LoadFigures, ShopLoad
from tests.integration.stages import aws, kind
from tests.integration.stages.base import Stage

STAGES = ("local", "aws", "kind")
stage_key = pytest.StashKey[Stage]()
#: the loads each test ran, by test, for the summary
loads_key = pytest.StashKey[dict[str, list[LoadFigures]]]()
_loads_before = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shopstack", "the stage the integration suite runs against")
    group.addoption(
        "--stage",
        choices=STAGES,
        default=os.environ.get("SHOPSTACK_STAGE", "local"),
        help="where the shop is deployed and tested (default: $SHOPSTACK_STAGE or local)",
    )
    group.addoption("--keep", action="store_true", help="leave the deployed shop running and print its URLs")
    group.addoption(
        "--deployed",
        action="store_true",
        help="test the shop as it runs now, building and deploying nothing (what a pipeline verifies)",
    )
    group.addoption(
        "--long",
        action="store_true",
        help="also run the long proofs (the autoscaling loop, every kind of release under load): tens of "
        "minutes more, so not in `./tox`",
    )
    group.addoption(
        "--teardown",
        action="store_true",
        help="aws: remove everything the deploy made after the suite (teardown.py)",
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    config.addinivalue_line(
        "markers", "disruptive: disturbs the stage (kills pods, drains nodes); runs after the other tests"
    )
    config.addinivalue_line(
        "markers", "long: a proof that takes many minutes of the stage's clock; runs only with --long"
    )
    config.addinivalue_line(
        "markers", "smoke: a fast check of a shopper's path, in the subset `-m smoke` that verifies a release"
    )
    if config.getoption("stage") == "aws":
        problem = aws.preflight()
        if problem:
            raise pytest.UsageError(problem)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The kind stage where it cannot run: skipped as a whole, with one line saying why."""
    if session.config.getoption("stage") == "kind":
        problem = kind.preflight()
        if problem:
            pytest.exit(f"skipped: {problem}", returncode=pytest.ExitCode.OK)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Disruptive tests last, so that every other test meets the stage as the deploy left it; long ones
    skipped unless asked for."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)
    if not config.getoption("long"):
        skip = pytest.mark.skip(reason="a long proof (many minutes): run it with --long")
        for item in items:
            if item.get_closest_marker("long") is not None:
                item.add_marker(skip)


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_loads_before] = len(ShopLoad.finished)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    ran = ShopLoad.finished[item.stash.get(_loads_before, len(ShopLoad.finished)) :]
    if ran:
        item.config.stash.setdefault(loads_key, {})[item.nodeid] = list(ran)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    stage = config.stash.get(stage_key, None)
    if stage is None:
        return
    console = Console(file=terminalreporter._tw._file, soft_wrap=True)  # the terminal pytest writes to
    phases = stage.phases.as_dict()
    split = " · ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
    console.print(f"[bold]{stage.name} stage[/bold]: {split}")
    stage.logs.mkdir(parents=True, exist_ok=True)
    (stage.logs / "phases.json").write_text(json.dumps(phases, indent=2) + "\n")
    loads = config.stash.get(loads_key, {})
    if loads:
        console.print("[bold]Loads[/bold] (requests, failed, orders placed, seconds):")
        for test, figures in loads.items():
            name = test.split("::")[-1]
            for load in figures:
                console.print(
                    f"  {name}: {load.kind} {load.requests:,} requests, {load.failed} failed, "
                    f"{load.placed:,} orders placed, {load.seconds:.0f} s"
                )
        (stage.logs / "loads.json").write_text(
            json.dumps({test: [asdict(f) for f in figures] for test, figures in loads.items()}, indent=2)
            + "\n"
        )
    if stage.keep:
        try:
            urls = stage.urls()
        except Exception as err:  # noqa: BLE001 - the summary must not hide the run's own result
            console.print(f"the shop was kept running, but its URLs could not be read: {err}")
            return
        console.print("[bold]The shop keeps running:[/bold]")
        for name, url in urls.items():
            console.print(f"  {name:<16} {url}")
