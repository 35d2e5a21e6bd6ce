"""The deploy's Kubernetes side (`infra.k8s`) through the real pyinfra CLI against a real local cluster
(API server, controllers, process kubelet running the payment image): server-side apply that writes only
what differs, drift shown by `--dry` and repaired, HPA-owned replicas left alone, pruning by the deploy's
label, and rollout waits that fail with the pods' events."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containers.nodestore import ImageStore
from infra.k8s.apply import differences, planned_changes
from infra.model.common import PRUNE_LABEL, PRUNE_VALUE
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, condition, get_json, payment_container, poll, start_cluster
from tests.support.pyinfra_run import Run, emulator_data, run_pyinfra

pytestmark = pytest.mark.timeout(600)

POD_CIDR = "127.141.0.0/16"
NS = "shopstack"
HOST_NAME = "@shopstack/test"
LABELS = {PRUNE_LABEL: PRUNE_VALUE}
KINDS = [
    ["v1", "Namespace"],
    ["v1", "ConfigMap"],
    ["apps/v1", "Deployment"],
    ["v1", "Service"],
    ["autoscaling/v2", "HorizontalPodAutoscaler"],
    ["policy/v1", "PodDisruptionBudget"],
]
WRITES = ("apply", "create", "patch", "update", "delete")
ROLLOUT_TIMEOUT = 120
FAILING_TIMEOUT = 15

DEPLOY = """
import json
import sys
from pyinfra.context import host
from infra.cloud import cloud_of
from infra.k8s.apply import apply, prune
from infra.k8s.rollout import always, wait_for_rollouts

objects = json.loads(open({objects!r}).read())
apply(objects=objects, name="apply")
prune(objects=objects, kinds={kinds!r}, name="prune")
wait_for_rollouts(objects=objects, timeout={timeout}, name="wait", _if=always)
cloud = cloud_of(host)
host.connector.on_disconnect(lambda: sys.stderr.write("CALLS " + json.dumps(cloud.calls) + "\\n"))
"""


def meta(name: str, namespaced: bool = True) -> dict[str, Any]:
    return {"name": name, "labels": dict(LABELS), **({"namespace": NS} if namespaced else {})}


def deployment(name: str, image: str, replicas: int) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": name}
    container = payment_container(
        image, requests={"cpu": "0.05", "memory": "64Mi"}, limits={"memory": "256Mi"}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }


def shop_objects(image: str) -> list[dict[str, Any]]:
    """Namespace, flags ConfigMap, `payment` (no HPA) with its Service and PDB, and `scaled` (an HPA keeps
    it at 2 or more while the Deployment declares 1). Listed out of dependency order on purpose."""
    return [
        deployment("payment", image, 1),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(NS, namespaced=False)},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("flags"),
            "data": {"flags.json": '{"a": true}'},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("payment"),
            "spec": {
                "selector": {"app.kubernetes.io/name": "payment"},
                "ports": [{"name": "http", "port": 8080, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta("payment"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "payment"}}},
        },
        deployment("scaled", image, 1),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta("scaled"),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
                "minReplicas": 2,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 90},
                        },
                    }
                ],
            },
        },
    ]


@pytest.mark.parametrize(
    ("desired", "live", "found"),
    [
        (
            {"resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}},
            {"resources": {"requests": {"cpu": "500m", "memory": "1024Mi"}}},
            [],
        ),
        (
            {"resources": {"limits": {"cpu": "1"}}},
            {"resources": {"limits": {"cpu": "2"}}},
            ["resources.limits.cpu"],
        ),
        ({"data": {"version": "1.30"}}, {"data": {"version": "1.3"}}, ["data.version"]),
        ({"port": 8080, "minAvailable": "1"}, {"port": "8080", "minAvailable": 1, "extra": True}, []),
        ({"args": ["a", "b"]}, {"args": ["a"]}, ["args"]),
        ({"ports": [{"port": 80}]}, {"ports": [{"port": 80, "protocol": "TCP"}]}, []),
        ({"flag": True}, {"flag": 1}, ["flag"]),
        ({"emptyDir": {}, "name": "x"}, {"name": "x"}, []),
        ({"data": {"k": "v"}}, {}, ["data"]),
    ],
)
def test_an_object_differs_only_where_it_sets_another_value(
    desired: Any, live: Any, found: list[str]
) -> None:
    assert differences(desired, live) == found


def test_hpa_owned_replicas_are_set_at_creation_only() -> None:
    objects = shop_objects("img")
    scaled = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "scaled")
    live = {f"apps/v1 Deployment {NS}/scaled": {**scaled, "spec": {**scaled["spec"], "replicas": 3}}}
    created = dict(planned_changes(objects, {}))
    assert created[f"create Deployment {NS}/scaled"]["spec"]["replicas"] == 1
    assert [d for d, _ in planned_changes([scaled, *objects[-1:]], live)] == [
        f"create HorizontalPodAutoscaler {NS}/scaled"
    ]
    relabelled = {**scaled, "metadata": {**scaled["metadata"], "annotations": {"a": "b"}}}
    [(description, body)] = planned_changes([relabelled, objects[-1]], {**live, **_live_hpa(objects[-1])})
    assert description == f"update Deployment {NS}/scaled: metadata.annotations"
    assert "replicas" not in body["spec"]


def test_a_service_selector_key_the_model_no_longer_sets_is_a_change() -> None:
    # a blue-green service turned rolling: its stable Service must stop selecting one colour's pods only
    stable = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("checkout"),
        "spec": {
            "selector": {"app.kubernetes.io/name": "checkout"},
            "ports": [{"name": "http", "port": 8080}],
        },
    }
    coloured = copy.deepcopy(stable)
    coloured["spec"]["selector"]["shopstack.io/colour"] = "blue"
    [(description, body)] = planned_changes([stable], {f"v1 Service {NS}/checkout": coloured})
    assert description == f"update Service {NS}/checkout: spec.selector"
    assert body["spec"]["selector"] == {"app.kubernetes.io/name": "checkout"}
    assert planned_changes([stable], {f"v1 Service {NS}/checkout": copy.deepcopy(stable)}) == []
    assert len(planned_changes([coloured], {f"v1 Service {NS}/checkout": stable})) == 1


def _live_hpa(hpa: dict[str, Any]) -> dict[str, Any]:
    return {f"autoscaling/v2 HorizontalPodAutoscaler {NS}/scaled": hpa}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("k8s-apply"), image_store, POD_CIDR)
    try:
        yield running
    finally:
        running.process.stop(grace=20)


@pytest.fixture(scope="module")
def data(cluster: Cluster, moto_endpoint: str) -> dict[str, Any]:
    return emulator_data(moto_endpoint, kube_access="kubeconfig", kubeconfig=str(cluster.kubectl.kubeconfig))


class Deployer:
    def __init__(self, workdir: Path, data: dict[str, Any]) -> None:
        self.workdir = workdir
        self.data = data
        self.runs = 0

    def __call__(self, objects: list[dict[str, Any]], *args: str, timeout: float = ROLLOUT_TIMEOUT) -> Run:
        self.runs += 1
        path = self.workdir / f"objects-{self.runs}.json"
        path.write_text(json.dumps(objects))
        deploy = DEPLOY.format(objects=str(path), kinds=KINDS, timeout=timeout)
        return run_pyinfra(self.workdir, self.data, deploy, "--json", *args, timeout=ROLLOUT_TIMEOUT + 120)


def calls(run: Run) -> dict[str, int]:
    found = re.search(r"^CALLS (\{.*\})$", run.stderr, re.MULTILINE)
    assert found, run.output
    return {key.removeprefix("kubernetes "): n for key, n in json.loads(found.group(1)).items()}


def unchanged(run: Run, operation: str) -> bool:
    op = next(o for o in run.results()["results"]["operations"] if o["name"] == operation)
    return bool(op["no_change"] == [HOST_NAME] and not op["success"])


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]) -> Deployer:
    return Deployer(tmp_path_factory.mktemp("deploys"), data)


@pytest.fixture(scope="module")
def first_run(deploy: Deployer, payment_image: BuiltImage) -> Run:
    return deploy(shop_objects(payment_image.reference))


def test_first_run_creates_everything_in_order_and_waits_until_available(
    first_run: Run, cluster: Cluster
) -> None:
    assert first_run.returncode == 0, first_run.output
    created = re.findall(r"create (\w+) ", first_run.output)
    assert created[0] == "Namespace"
    assert sorted(created) == sorted(
        [
            "Namespace",
            "ConfigMap",
            "Service",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
        ]
    )
    assert "rolled out Deployment shopstack/payment" in first_run.stderr
    payment = get_json(cluster.kubectl, "deployment", "payment", "-n", NS)
    assert condition(payment, "Available")["status"] == "True"
    assert payment["status"]["readyReplicas"] == 1
    assert calls(first_run)["apply"] == 7


def test_second_run_changes_and_writes_nothing(
    first_run: Run, deploy: Deployer, payment_image: BuiltImage
) -> None:
    again = deploy(shop_objects(payment_image.reference))
    assert again.returncode == 0, again.output
    assert unchanged(again, "apply")
    assert unchanged(again, "prune")
    assert not [verb for verb in calls(again) if verb in WRITES], calls(again)


def test_drift_is_shown_by_dry_and_repaired(
    first_run: Run, deploy: Deployer, cluster: Cluster, payment_image: BuiltImage
) -> None:
    objects = shop_objects(payment_image.reference)
    cluster.kubectl("patch", "configmap", "flags", "-n", NS, "-p", json.dumps({"data": {"flags.json": "{}"}}))
    cluster.kubectl("scale", "deployment", "payment", "-n", NS, "--replicas=2")

    plan = deploy(objects, "--dry")
    assert plan.returncode == 0, plan.output
    assert "update ConfigMap shopstack/flags: data.flags.json" in plan.output
    assert "update Deployment shopstack/payment: spec.replicas" in plan.output
    assert not [verb for verb in calls(plan) if verb in WRITES]
    wait = next(op for op in plan.results()["plan"] if op["name"] == "wait")
    assert wait["hosts_with_conditional_change"] == [HOST_NAME]
    assert cluster.kubectl("get", "cm", "flags", "-n", NS, "-o", "jsonpath={.data.flags\\.json}") == "{}"

    repaired = deploy(objects)
    assert repaired.returncode == 0, repaired.output
    assert calls(repaired)["apply"] == 2
    assert (
        cluster.kubectl("get", "cm", "flags", "-n", NS, "-o", "jsonpath={.data.flags\\.json}")
        == '{"a": true}'
    )
    assert get_json(cluster.kubectl, "deployment", "payment", "-n", NS)["spec"]["replicas"] == 1


def test_replicas_an_hpa_set_are_not_reverted(
    first_run: Run, deploy: Deployer, cluster: Cluster, payment_image: BuiltImage
) -> None:
    def replicas() -> int:
        return int(get_json(cluster.kubectl, "deployment", "scaled", "-n", NS)["spec"]["replicas"])

    assert poll(lambda: replicas() == 2, within=60), "the HPA raises `scaled` to its minReplicas"
    again = deploy(shop_objects(payment_image.reference))
    assert again.returncode == 0, again.output
    assert unchanged(again, "apply")
    assert replicas() == 2


def test_an_update_keeps_the_replicas_of_a_deployment_its_hpa_never_scaled(
    first_run: Run, deploy: Deployer, cluster: Cluster, payment_image: BuiltImage
) -> None:
    # created at the HPA's minimum, so the deploy's field manager alone owns `spec.replicas`; an apply
    # that leaves the field out would put it back to its default of one (server-side apply's pitfall)
    objects = shop_objects(payment_image.reference)
    steady = deployment("steady", payment_image.reference, 2)
    hpa = copy.deepcopy(objects[-1])
    hpa["metadata"]["name"] = hpa["spec"]["scaleTargetRef"]["name"] = "steady"
    assert deploy([*objects, steady, hpa]).returncode == 0

    changed = copy.deepcopy(steady)
    changed["spec"]["template"]["metadata"]["annotations"] = {"release": "2"}
    updated = deploy([*objects, changed, hpa])
    assert updated.returncode == 0, updated.output
    live = get_json(cluster.kubectl, "deployment", "steady", "-n", NS)
    assert live["spec"]["replicas"] == 2
    assert live["spec"]["template"]["metadata"]["annotations"] == {"release": "2"}
    assert deploy(objects).returncode == 0


def test_undeclared_objects_are_pruned_and_unlabelled_ones_left(
    first_run: Run, deploy: Deployer, cluster: Cluster, payment_image: BuiltImage
) -> None:
    objects = shop_objects(payment_image.reference)
    retired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("retired"), "data": {"k": "v"}}
    assert deploy([*objects, retired]).returncode == 0
    cluster.kubectl("create", "configmap", "handmade", "-n", NS, "--from-literal=k=v")

    pruned = deploy(objects)
    assert pruned.returncode == 0, pruned.output
    assert "delete ConfigMap shopstack/retired" in pruned.output
    names = cluster.kubectl("get", "configmaps", "-n", NS, "-o", "name").split()
    assert "configmap/retired" not in names
    assert "configmap/handmade" in names
    assert "configmap/flags" in names
    assert calls(pruned)["delete"] == 1


def test_a_rollout_that_cannot_pull_its_image_fails_at_once_naming_the_pod(
    first_run: Run, deploy: Deployer, payment_image: BuiltImage
) -> None:
    objects = shop_objects(payment_image.reference)
    broken = deployment("broken", "shopstack/absent@sha256:" + "0" * 64, 1)
    failed = deploy([*objects, broken])
    assert failed.returncode != 0
    # not at the timeout: "cannot roll out" is said only of a failure no wait can cure
    assert "did not roll out within" not in failed.output
    # the kubelet reports ErrImagePull, then ImagePullBackOff between retries, as a real one does
    assert re.search(
        r"Deployment shopstack/broken cannot roll out: pod broken-\S+ container app: "
        r"(ErrImagePull|ImagePullBackOff): .*not found",
        failed.output,
    ), failed.output
    assert re.search(r"Pod broken-\S+: app waiting: (ErrImagePull|ImagePullBackOff)", failed.output)

    cleaned = deploy(objects)
    assert cleaned.returncode == 0, cleaned.output
    assert "delete Deployment shopstack/broken" in cleaned.output


def test_a_container_that_cannot_be_created_fails_the_rollout_at_once(
    first_run: Run, deploy: Deployer, payment_image: BuiltImage
) -> None:
    objects = shop_objects(payment_image.reference)
    broken = deployment("nowhere", payment_image.reference, 1)
    broken["spec"]["template"]["spec"]["containers"][0]["workingDir"] = "/no/such/dir"
    failed = deploy([*objects, broken])
    assert failed.returncode != 0
    assert "did not roll out within" not in failed.output
    assert re.search(
        r"Deployment shopstack/nowhere cannot roll out: pod nowhere-\S+ container app: "
        r"CreateContainerError: .*/no/such/dir",
        failed.output,
    ), failed.output
    assert deploy(objects).returncode == 0


def test_a_rollout_that_may_still_succeed_fails_at_the_timeout_with_the_pod_events(
    first_run: Run, deploy: Deployer, payment_image: BuiltImage
) -> None:
    objects = shop_objects(payment_image.reference)
    unready = deployment("unready", payment_image.reference, 1)
    unready["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/nope"
    failed = deploy([*objects, unready], timeout=FAILING_TIMEOUT)
    assert failed.returncode != 0
    assert (
        f"Deployment shopstack/unready did not roll out within {FAILING_TIMEOUT} s (0/1 available)"
        in failed.output
    )
    assert re.search(r"Pod unready-\S+: Unhealthy: Readiness probe failed", failed.output), failed.output
    assert "Deployment shopstack/payment did not roll out" not in failed.output
    assert deploy(objects).returncode == 0


def test_scale_and_restart_wait_for_their_rollouts(
    first_run: Run, deploy: Deployer, cluster: Cluster, payment_image: BuiltImage
) -> None:
    adhoc = (
        "from infra.k8s.rollout import restart, scale\n"
        f"scale(deployment='payment', replicas=2, timeout={ROLLOUT_TIMEOUT}, name='scale')\n"
        f"restart(deployment='payment', timeout={ROLLOUT_TIMEOUT}, name='restart')\n"
    )
    run = run_pyinfra(deploy.workdir, deploy.data, adhoc, name="adhoc", timeout=ROLLOUT_TIMEOUT * 3)
    assert run.returncode == 0, run.output
    payment = get_json(cluster.kubectl, "deployment", "payment", "-n", NS)
    assert payment["spec"]["replicas"] == 2
    assert payment["status"]["availableReplicas"] == 2
    assert "kubectl.kubernetes.io/restartedAt" in payment["spec"]["template"]["metadata"]["annotations"]
    assert "rolled out Deployment shopstack/payment (2/2 available)" in run.stderr

    missing = run_pyinfra(
        deploy.workdir,
        deploy.data,
        "from infra.k8s.rollout import scale\nscale(deployment='nope', replicas=1)\n",
    )
    assert missing.returncode != 0
    assert "no Deployment shopstack/nope made by the deploy" in missing.output

    assert deploy(shop_objects(payment_image.reference)).returncode == 0
    assert get_json(cluster.kubectl, "deployment", "payment", "-n", NS)["spec"]["replicas"] == 1
