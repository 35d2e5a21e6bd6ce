"""The stage, brought up once for the whole suite and taken down at its end (also when a test fails or
the run is interrupted), and what the tests share of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.console import Console

from tests.integration.plugin import stage_key
from tests.integration.stages import Stage, StageError, make_stage
from tests.support.collector_logs import CollectorLogs
from tests.support.jaeger import JaegerQuery
from tests.support.shopper import Shopper


@pytest.fixture(scope="session")
def stage(request: pytest.FixtureRequest) -> Iterator[Stage]:
    config = request.config
    capture = config.pluginmanager.getplugin("capturemanager")
    console = Console(stderr=True, soft_wrap=True)
    try:
        stage = make_stage(
            config.getoption("stage"),
            console,
            keep=config.getoption("keep"),
            teardown=config.getoption("teardown"),
            deployed=config.getoption("deployed"),
        )
    except StageError as err:
        pytest.exit(str(err), returncode=2)
    config.stash[stage_key] = stage
    try:
        with capture.global_and_fixture_disabled():
            try:
                stage.start()
            except StageError as err:
                pytest.exit(f"the {stage.name} stage did not come up: {err}", returncode=1)
        stage.phases.begin("suite")
        yield stage
    finally:
        stage.phases.end("suite")
        with capture.global_and_fixture_disabled():
            stage.stop()


@pytest.fixture(scope="session")
def telemetry(stage: Stage) -> JaegerQuery:
    """The stage's trace store (Jaeger's query API), at every stage."""
    return stage.telemetry


@pytest.fixture(scope="session")
def collector_logs(stage: Stage) -> CollectorLogs:
    """The services' log records, from the collector's log (its debug exporter)."""
    return stage.collector_logs


@pytest.fixture
def shopper(stage: Stage) -> Shopper:
    """A new shopper (its own session) at the shop's public URL."""
    return Shopper(stage.shop_url)
