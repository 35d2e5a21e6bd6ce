"""The whole deploy, `pyinfra inventory/local.py deploy.py`, into a local cloud of its own: the shop answers
through the ALB and an order reaches accounting; a second run changes no state; drift made by hand is
reported by `--dry` and repaired; a service dropped from the model is pruned; a second deploy while one
runs stops naming the holder; a killed deploy converges on the next run; flags and replica counts set
ad hoc outlive the next deploy; the deploy record; teardown.

The tests of this module run in order on one deployed shop (each leaves it as the deploy declares it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sim.pytest_plugin import LocalCloud, running_local_cloud
from tests.k8s.conftest import kubectl_binary
from tests.support.pyinfra_run import (
    LOCAL_INVENTORY,
    PYINFRA,
    REPO,
    Run,
    emulator_client,
    local_pyinfra,
    run_pyinfra,
)
from tests.support.shopper import Shopper
from tests.support.waiting import eventually

DEPLOY = REPO / "deploy.py"
TEARDOWN = REPO / "teardown.py"
NAMESPACE = "shopstack"
TELESCOPE = "OLJCESPC7Z"
#: operations that act on every run: they hold the lock, wait, and record the run; they change no state
BOOKKEEPING = {"Take the deploy lock", "Kubernetes: rollouts", "Deploy record", "Release the deploy lock"}

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with running_local_cloud(tmp_path_factory.mktemp("deploy-cloud"), address_blocks="170-179") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def env(cloud: LocalCloud, shop_images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What `inventory/local.py` reads: the local cloud's state directory and a settings file."""
    settings = tmp_path_factory.mktemp("settings") / "settings.toml"
    settings.write_text(f'build_dir = "{shop_images}"\nrollout_timeout_seconds = 300\n')
    return {"SHOPSTACK_SIM_STATE": str(cloud.state_dir), "SHOPSTACK_SETTINGS": str(settings)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy")


def deploy(workdir: Path, env: dict[str, str], *args: str, deploy_file: Path | str = DEPLOY) -> Run:
    return run_pyinfra(workdir, LOCAL_INVENTORY, deploy_file, "--json", *args, env=env, timeout=900)


@pytest.fixture(scope="module")
def first_deploy(workdir: Path, env: dict[str, str]) -> Run:
    run = deploy(workdir, env)
    assert run.returncode == 0, run.output[-6000:]
    return run


def kubectl(cloud: LocalCloud, *args: str, check: bool = True) -> str:
    kubeconfig = cloud.state_dir / "eks" / "kubeconfig" / "shopstack"
    result = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(kubeconfig), "-n", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result.stdout


def place_order(shop_url: str) -> str:
    shopper = Shopper(shop_url)
    assert shopper.add(TELESCOPE, 2).status_code in (200, 201)
    response = shopper.checkout()
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def test_the_first_deploy_serves_the_shop_through_the_alb_and_an_order_reaches_accounting(
    first_deploy: Run, cloud: LocalCloud
) -> None:
    home = httpx.get(f"{cloud.alb}/", timeout=30)
    assert home.status_code == 200
    assert "<html" in home.text.lower()
    order_id = place_order(cloud.alb)

    orders = emulator_client(cloud.aws, "dynamodb")

    def recorded() -> dict[str, Any] | None:
        item = orders.get_item(TableName="shopstack-orders", Key={"order_id": {"S": order_id}}).get("Item")
        return item  # type: ignore[no-any-return]

    assert eventually(recorded, timeout=60, what=f"order {order_id} in the orders table")


def test_a_second_deploy_changes_no_state_and_writes_nothing_to_kubernetes(
    first_deploy: Run, workdir: Path, env: dict[str, str]
) -> None:
    again = deploy(workdir, env)
    assert again.returncode == 0, again.output[-4000:]
    assert set(again.changed()) <= BOOKKEEPING, again.changed()
    assert "Kubernetes calls (0 writes)" in again.stderr


def test_drift_made_by_hand_is_reported_by_dry_and_repaired_by_the_next_run(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    ec2 = emulator_client(cloud.aws, "ec2")
    tables = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": ["shopstack-private-*"]}])
    private = tables["RouteTables"][0]
    ec2.delete_route(RouteTableId=private["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    kubectl(cloud, "scale", "deployment/accounting-blue", "--replicas=3")
    kubectl(
        cloud,
        "patch",
        "configmap/payment-blue-config",
        "--type=merge",
        "-p",
        '{"data":{"LOG_LEVEL":"DEBUG"}}',
    )

    dry = deploy(workdir, env, "--dry")
    assert dry.returncode == 0, dry.output[-4000:]
    assert {"Route tables", "Kubernetes: apply"} <= set(dry.planned_changes())

    repair = deploy(workdir, env)
    assert repair.returncode == 0, repair.output[-4000:]
    routes = ec2.describe_route_tables(RouteTableIds=[private["RouteTableId"]])["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("NatGatewayId") for r in routes)
    assert kubectl(cloud, "get", "deployment/accounting-blue", "-o", "jsonpath={.spec.replicas}") == "1"
    # the live colour's environment is what the deploy says again (released to the idle colour, since the
    # pods a drifted ConfigMap would start are not what the deploy declared)
    live = kubectl(cloud, "get", "service/payment", "-o", r"jsonpath={.spec.selector.shopstack\.io/colour}")
    config = json.loads(kubectl(cloud, "get", f"configmap/payment-{live}-config", "-o", "json"))
    assert config["data"].get("LOG_LEVEL") != "DEBUG"


PRUNING_DEPLOY = """\
from pyinfra import host

from infra import desired
from infra.cloud import cloud_of
from infra.k8s import apply

settings = cloud_of(host).settings
everything = desired.kubernetes_objects(host, settings).final
objects = [o for o in everything if o["metadata"]["labels"].get("app.kubernetes.io/name") != "payment"]
apply.apply(objects=objects, name="Kubernetes: apply")
apply.prune(objects=objects, kinds=apply.kinds_of(everything), name="Kubernetes: prune")
"""


def test_a_service_dropped_from_the_model_is_pruned_and_nothing_else_is(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    kubectl(cloud, "create", "configmap", "made-by-hand", "--from-literal=a=b")
    pruned = deploy(workdir, env, deploy_file=PRUNING_DEPLOY)
    assert pruned.returncode == 0, pruned.output[-4000:]
    assert "Kubernetes: prune" in pruned.changed()
    for kind in ("deployment", "service", "configmap", "serviceaccount", "networkpolicy"):
        gone = kubectl(cloud, "get", kind, "-l", "app.kubernetes.io/name=payment", check=False)
        assert "payment" not in gone, f"a {kind} of payment survived the prune"
    assert "made-by-hand" in kubectl(cloud, "get", "configmap")
    assert "checkout" in kubectl(cloud, "get", "deployment")

    back = deploy(workdir, env)
    assert back.returncode == 0, back.output[-4000:]
    assert "payment" in kubectl(cloud, "get", "deployment")
    kubectl(cloud, "delete", "configmap", "made-by-hand")


def lock_holder(cloud: LocalCloud) -> dict[str, Any] | None:
    items = emulator_client(cloud.aws, "dynamodb").scan(TableName="shopstack-deploy-lock")["Items"]
    return items[0] if items else None


def start_deploy(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(PYINFRA), "-y", str(LOCAL_INVENTORY), str(DEPLOY), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_second_deploy_while_one_runs_stops_naming_the_holder_and_changes_nothing(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    first = start_deploy(env)
    try:
        holder = eventually(lambda: lock_holder(cloud), timeout=120, interval=0.05, what="the lock")
        first.send_signal(signal.SIGSTOP)  # held mid-run, however fast it would otherwise be
        second = deploy(workdir, env)
        first.send_signal(signal.SIGCONT)
    finally:
        output, _ = first.communicate(timeout=600)
    assert second.returncode != 0
    assert holder["owner"]["S"] in second.output
    assert "break_lock" in second.output
    assert "Starting operation: VPC" not in second.output
    assert first.returncode == 0, output[-4000:]
    assert lock_holder(cloud) is None


def test_a_deploy_killed_midway_converges_on_the_next_run_after_its_lock_is_broken(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    kubectl(cloud, "delete", "deployment", "recommendation-blue")
    killed = start_deploy(env)
    try:
        eventually(lambda: lock_holder(cloud), timeout=120, interval=0.05, what="the deploy's lock")
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=60)
    assert lock_holder(cloud) is not None, "a SIGKILLed deploy cannot release its lock"

    refused = deploy(workdir, env)
    assert refused.returncode != 0
    assert "break_lock" in refused.output

    converged = deploy(workdir, env, "--data", "break_lock=true")
    assert converged.returncode == 0, converged.output[-4000:]
    assert "recommendation" in kubectl(cloud, "get", "deployment")
    settled = deploy(workdir, env)
    assert set(settled.changed()) <= BOOKKEEPING, settled.changed()


def flag_variant(cloud: LocalCloud, flag: str) -> str:
    flags = json.loads(kubectl(cloud, "get", "configmap/flags", "-o", "jsonpath={.data.flags\\.json}"))
    return str(flags["flags"][flag]["defaultVariant"])


def test_a_flag_set_ad_hoc_reaches_the_shop_and_outlives_the_next_deploy(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    on = local_pyinfra(env, "infra.ops.set_flag", "flag=cartFailure", "value=on")
    assert on.returncode == 0, on.output[-3000:]
    assert flag_variant(cloud, "cartFailure") == "on"
    shopper = Shopper(cloud.alb)
    assert eventually(lambda: shopper.add(TELESCOPE).status_code >= 500, timeout=30, what="cart failing")

    redeploy = deploy(workdir, env)
    assert redeploy.returncode == 0, redeploy.output[-3000:]
    assert "Kubernetes: apply" not in redeploy.changed()
    assert flag_variant(cloud, "cartFailure") == "on"

    off = local_pyinfra(env, "infra.ops.set_flag", "flag=cartFailure", "value=off")
    assert off.returncode == 0, off.output[-3000:]
    assert flag_variant(cloud, "cartFailure") == "off"
    assert eventually(lambda: shopper.add(TELESCOPE).status_code < 300, timeout=30, what="cart working again")

    unknown = local_pyinfra(env, "infra.ops.set_flag", "flag=noSuchFlag", "value=on")
    assert unknown.returncode != 0
    assert "unknown flag 'noSuchFlag'" in unknown.output


def serving_pods(cloud: LocalCloud, service: str) -> set[str]:
    """The names of `service`'s pods that are not terminating (those keep serving a while: preStop)."""
    pods = json.loads(kubectl(cloud, "get", "pods", "-l", f"app.kubernetes.io/name={service}", "-o", "json"))
    return {p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")}


def test_a_service_scaled_ad_hoc_keeps_its_count_through_the_next_deploy_and_restarts_replace_pods(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    replicas = "jsonpath={.spec.replicas}"
    scaled = local_pyinfra(env, "infra.ops.scale", "service=accounting", "replicas=2")
    assert scaled.returncode == 0, scaled.output[-3000:]
    assert kubectl(cloud, "get", "deployment/accounting-blue", "-o", replicas) == "2"
    redeploy = deploy(workdir, env)
    assert redeploy.returncode == 0, redeploy.output[-3000:]
    assert kubectl(cloud, "get", "deployment/accounting-blue", "-o", replicas) == "2"
    back = local_pyinfra(env, "infra.ops.scale", "service=accounting", "replicas=1")
    assert back.returncode == 0, back.output[-3000:]

    before = serving_pods(cloud, "payment")
    restarted = local_pyinfra(env, "infra.ops.restart", "service=payment")
    assert restarted.returncode == 0, restarted.output[-3000:]
    after = serving_pods(cloud, "payment")
    assert after
    assert not before & after


def test_the_load_generators_users_set_ad_hoc_replace_its_pod_and_outlive_the_next_deploy(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    users = "jsonpath={.data.LOCUST_USERS}"
    before = serving_pods(cloud, "load-generator")
    loaded = local_pyinfra(env, "infra.ops.load", "users=2")
    assert loaded.returncode == 0, loaded.output[-3000:]
    assert kubectl(cloud, "get", "configmap/load-generator-config", "-o", users) == "2"
    assert serving_pods(cloud, "load-generator").isdisjoint(before)

    redeploy = deploy(workdir, env)
    assert redeploy.returncode == 0, redeploy.output[-3000:]
    assert kubectl(cloud, "get", "configmap/load-generator-config", "-o", users) == "2"

    idle = local_pyinfra(env, "infra.ops.load", "users=0")
    assert idle.returncode == 0, idle.output[-3000:]
    assert kubectl(cloud, "get", "configmap/load-generator-config", "-o", users) == "0"
    refused = local_pyinfra(env, "infra.ops.load", "users=-1")
    assert refused.returncode != 0
    assert "users takes a whole number" in refused.output


def test_the_deploy_record_names_the_revision_the_images_and_what_changed(
    first_deploy: Run, env: dict[str, str], shop_images: Path
) -> None:
    shown = local_pyinfra(env, "fact", "infra.aws.record.LatestRecord")
    assert shown.returncode == 0, shown.output[-3000:]
    images = json.loads((shop_images / "images.json").read_text())
    assert images["payment"].split("@")[1] in shown.output
    assert "changed" in shown.output


def test_teardown_removes_everything_but_the_state_backend(
    first_deploy: Run, workdir: Path, env: dict[str, str], cloud: LocalCloud
) -> None:
    down = run_pyinfra(workdir, LOCAL_INVENTORY, TEARDOWN, env=env, timeout=900)
    assert down.returncode == 0, down.output[-4000:]
    assert emulator_client(cloud.aws, "eks").list_clusters()["clusters"] == []
    ec2 = emulator_client(cloud.aws, "ec2")
    tagged = [{"Name": "tag-key", "Values": ["shopstack:project"]}]
    assert ec2.describe_vpcs(Filters=tagged)["Vpcs"] == []
    assert (
        ec2.describe_nat_gateways(Filters=[*tagged, {"Name": "state", "Values": ["available"]}])[
            "NatGateways"
        ]
        == []
    )
    assert emulator_client(cloud.aws, "elbv2").describe_load_balancers()["LoadBalancers"] == []
    tables = emulator_client(cloud.aws, "dynamodb").list_tables()["TableNames"]
    assert tables == ["shopstack-deploy-lock"]
    assert "shopstack-state-123456789012-us-east-1" in [
        b["Name"] for b in emulator_client(cloud.aws, "s3").list_buckets()["Buckets"]
    ]
    again = run_pyinfra(workdir, LOCAL_INVENTORY, TEARDOWN, "--json", env=env, timeout=900)
    assert again.returncode == 0, again.output[-4000:]
    assert set(again.changed()) <= BOOKKEEPING, again.changed()
