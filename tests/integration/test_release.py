"""Releases under load fail no request: a new build of every service released blue-green, the same build
deployed again (nothing changes), a rollback, two broken releases that never take traffic, and a service
released rolling. Every step runs under a steady mixed load through the ALB (`MixedLoad`: browse, cart,
checkout) whose every request is kept and whose every order is looked for.

All are long proofs (`--long`, tens of minutes); the last deploys the stage's own build again, so that the
module leaves the stage as it found it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.resources.networking_v1 import Ingress

from infra.model import SERVICE_NAMES
from infra.model.release import COLOUR_LABEL
from tests.integration.load import MixedLoad
from tests.integration.observe import stored_orders, wait_for_no_lag
from tests.integration.stages.base import BUILD_DIR, Stage
from tests.support.pyinfra_run import REPO, Run
from tests.support.waiting import eventually

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(2400)]

PROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
#: operations that act on every deploy without changing what runs
BOOKKEEPING = {"Take the deploy lock", "Kubernetes: rollouts", "Deploy record", "Release the deploy lock"}
LOAD_SECONDS = 900
MIN_REQUESTS = 5000


@pytest.fixture(scope="module")
def next_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A new build of every service (another revision: every image's config, so every digest, differs)."""
    revision = f"release-test-{uuid.uuid4().hex[:8]}"
    out = tmp_path_factory.mktemp("next-build")
    command = [sys.executable, "-m", "containers", "build", "--out", str(out), "--revision", revision]
    built = subprocess.run(
        [*command, "--store", str(BUILD_DIR / "store")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return out, f"{PROJECT_VERSION}+{revision}"


def deploy(stage: Stage, *data: str) -> Run:
    """`pyinfra -y INVENTORY deploy.py --json` with `--data` overrides, as an operator runs it."""
    args = [item for pair in data for item in ("--data", pair)]
    done = stage.pyinfra("deploy.py", "--json", *args, timeout=1500)
    return Run(done.returncode, done.stdout, done.stderr)


def version_of(stage: Stage, service: str) -> str:
    """The build a service's stable Service answers from."""
    return str(httpx.get(f"{stage.service_url(service)}/healthz", timeout=10).json()["version"])


def live_colour(stage: Stage, service: str) -> str:
    spec = stage.kube().get(Service, service, namespace=stage.namespace).spec
    assert spec is not None
    return str((spec.selector or {})[COLOUR_LABEL])


def alb_weights(stage: Stage) -> dict[str, int]:
    ingress = stage.kube().get(Ingress, stage.settings.project, namespace=stage.namespace)
    assert ingress.metadata is not None
    action = json.loads(
        (ingress.metadata.annotations or {})["alb.ingress.kubernetes.io/actions.frontend-proxy"]
    )
    return {group["serviceName"]: group["weight"] for group in action["forwardConfig"]["targetGroups"]}


def replicas(stage: Stage, name: str) -> int:
    spec = stage.kube().get(Deployment, name, namespace=stage.namespace).spec
    return int(spec.replicas or 0) if spec else 0


def assert_no_order_lost(stage: Stage, placed: list[str]) -> None:
    assert len(placed) == len(set(placed)), "an order id was given twice"
    eventually(
        lambda: set(placed) <= stored_orders(stage, placed),
        timeout=120,
        interval=1,
        what=f"all {len(placed)} orders in the orders table",
    )
    # fraud-detection keeps its reviews in each pod's memory, and a release retires the old colour's pods
    # with theirs: that it lost none is that its group committed every order, each after its review
    wait_for_no_lag(stage, "fraud-detection", timeout=120)


def under_load(stage: Stage, minimum: int = 300) -> MixedLoad:
    load = MixedLoad(stage.shop_url, shoppers=4, max_seconds=LOAD_SECONDS).__enter__()
    eventually(lambda: len(load.answers) >= 50, timeout=60, what="the load's first answers")
    return load


@pytest.mark.long
def test_a_new_build_of_every_service_is_released_blue_green_with_no_failed_request(
    stage: Stage, next_build: tuple[Path, str]
) -> None:
    build, version = next_build
    before = {service: live_colour(stage, service) for service in SERVICE_NAMES}
    old_versions = {version_of(stage, service) for service in SERVICE_NAMES}
    assert version not in old_versions
    load = under_load(stage)
    try:
        released = deploy(stage, f"build_dir={build}")
        done_at = time.time()
        eventually(
            lambda: len(load.answers) >= MIN_REQUESTS, timeout=LOAD_SECONDS, what=f"{MIN_REQUESTS} requests"
        )
        eventually(lambda: len(load.since(done_at + 2)) >= 200, timeout=120, what="answers after the release")
    finally:
        load.stop()
    assert released.returncode == 0, released.output[-6000:]
    assert load.failures == [], (
        f"{len(load.failures)} of {len(load.answers)} requests failed: {load.failures[:10]}"
    )
    # every answer after the switch came from the new build, and every service answers from it
    assert {a.version for a in load.since(done_at + 2)} == {version}
    for service in SERVICE_NAMES:
        assert version_of(stage, service) == version, service
        new = live_colour(stage, service)
        assert new != before[service], f"{service} did not change colour"
        old = "blue" if new == "green" else "green"
        assert replicas(stage, f"{service}-{old}") == 0, f"{service}'s old colour still runs"
    assert alb_weights(stage)[f"frontend-proxy-{live_colour(stage, 'frontend-proxy')}"] == 100
    record = json.loads(
        stage.aws("s3")
        .get_object(Bucket=stage.settings.state_bucket, Key="records/latest.json")["Body"]
        .read()
    )
    assert record["live"] == {service: live_colour(stage, service) for service in SERVICE_NAMES}
    assert_no_order_lost(stage, load.placed)


@pytest.mark.long
def test_the_same_build_deployed_again_changes_nothing(stage: Stage, next_build: tuple[Path, str]) -> None:
    build, _ = next_build
    again = deploy(stage, f"build_dir={build}")
    assert again.returncode == 0, again.output[-4000:]
    assert set(again.changed()) <= BOOKKEEPING, again.changed()


@pytest.mark.long
@pytest.mark.parametrize(
    ("service", "env", "why"),
    [
        # the cart's table is its own readiness: the new colour never turns Ready
        ("cart", {"CART_TABLE": "no-such-table"}, "did not roll out"),
        # recommendation is Ready without its peer, but its smoke path answers 503
        ("recommendation", {"PRODUCT_CATALOG_URL": "http://no-such-service:8080"}, "failed its smoke check"),
    ],
)
def test_a_broken_release_never_takes_traffic(
    stage: Stage, next_build: tuple[Path, str], service: str, env: dict[str, str], why: str
) -> None:
    build, _ = next_build
    colour, weights = live_colour(stage, service), alb_weights(stage)
    load = under_load(stage)
    try:
        broken = deploy(
            stage,
            f"build_dir={build}",
            f"service_env={json.dumps({service: env})}",
            "rollout_timeout_seconds=60",
        )
    finally:
        load.stop()
    assert broken.returncode != 0
    assert why in broken.output, broken.output[-4000:]
    assert service in broken.output
    assert live_colour(stage, service) == colour, "the broken colour took the traffic"
    assert alb_weights(stage) == weights
    assert load.failures == [], (
        f"{len(load.failures)} of {len(load.answers)} requests failed: {load.failures[:10]}"
    )
    assert_no_order_lost(stage, load.placed)


@pytest.mark.long
def test_a_rollback_under_load_fails_no_request(stage: Stage, next_build: tuple[Path, str]) -> None:
    _, version = next_build
    load = under_load(stage)
    try:
        for service in ("frontend-proxy", "payment"):
            done = stage.pyinfra(
                "infra.ops.rollback", f"service={service}", "--data", f"build_dir={next_build[0]}"
            )
            assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        done_at = time.time()
        eventually(
            lambda: len(load.since(done_at + 2)) >= 200, timeout=120, what="answers after the rollback"
        )
    finally:
        load.stop()
    assert load.failures == [], (
        f"{len(load.failures)} of {len(load.answers)} requests failed: {load.failures[:10]}"
    )
    assert version not in {a.version for a in load.since(done_at + 2)}, "frontend-proxy still answers"
    assert version_of(stage, "payment") != version
    assert version_of(stage, "cart") == version, "only the services rolled back changed"
    # a later deploy of the same build does not release the rolled-back images again
    again = deploy(stage, f"build_dir={next_build[0]}")
    assert again.returncode == 0, again.output[-4000:]
    assert version_of(stage, "payment") != version
    assert_no_order_lost(stage, load.placed)


@pytest.mark.long
def test_a_rolling_service_is_released_with_no_failed_request(
    stage: Stage, next_build: tuple[Path, str]
) -> None:
    build, _ = next_build
    rolling = 'release_strategies={"checkout": "rolling"}'
    converted = deploy(stage, f"build_dir={build}", rolling)  # a change of strategy is not a release
    assert converted.returncode == 0, converted.output[-4000:]
    assert replicas(stage, "checkout") >= 1
    load = under_load(stage)
    try:
        updated = deploy(
            stage,
            f"build_dir={build}",
            rolling,
            f"service_env={json.dumps({'checkout': {'LOG_LEVEL': 'DEBUG'}})}",
        )
        done_at = time.time()
        eventually(lambda: len(load.since(done_at)) >= 100, timeout=120, what="answers after the update")
    finally:
        load.stop()
    assert updated.returncode == 0, updated.output[-4000:]
    assert load.failures == [], (
        f"{len(load.failures)} of {len(load.answers)} requests failed: {load.failures[:10]}"
    )
    assert_no_order_lost(stage, load.placed)
    back = deploy(stage, f"build_dir={build}")
    assert back.returncode == 0, back.output[-4000:]


@pytest.mark.long
def test_the_stage_own_build_is_released_back_with_no_failed_request(stage: Stage) -> None:
    load = under_load(stage)
    try:
        restored = deploy(stage)
    finally:
        load.stop()
    assert restored.returncode == 0, restored.output[-6000:]
    assert load.failures == [], (
        f"{len(load.failures)} of {len(load.answers)} requests failed: {load.failures[:10]}"
    )
    versions = {version_of(stage, service) for service in SERVICE_NAMES}
    assert len(versions) >= 1
    assert all("release-test-" not in v for v in versions)
    assert_no_order_lost(stage, load.placed)
