"""PodDisruptionBudget status and the eviction rule, in-process with a `Store` and the disruption
controller's `reconcile()` driven by hand; the `pods/eviction` subresource through the ASGI app. Proves the
status for each form of budget (numbers and percentages, expected pods from the owning workload's
replicas or from the pods), that an eviction deletes the pod while the budget allows and spends the
allowance at once, and that it is refused with upstream's 429 otherwise; that removing a node (the EKS
node group's drain, `sim.eks.drain`) evicts through the same rule and deletes the rest after its wait.
Then, on a real two-node cluster with the real kubectl, `kubectl drain` evicts bare pods only as far as
their budget allows and retries the rest, and moves a Deployment to the other node never leaving fewer
Ready pods than the budget asks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from containers.nodestore import ImageStore
from sim.controllers.disruption import DisruptionController
from sim.eks.drain import pods_on, remove_node
from sim.k8s import resources
from sim.k8s.app import KubeApp
from sim.k8s.errors import ApiError
from sim.k8s.eviction import REFUSED, evict
from sim.k8s.store import Store
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, condition, get_json, payment_container, poll, start_cluster

pytestmark = pytest.mark.timeout(300)

PODS = resources.by_key("pods")
PDBS = resources.by_key("poddisruptionbudgets.policy")
NODES = resources.by_key("nodes")
LEASES = resources.by_key("leases.coordination.k8s.io")
LEASE_NS = "kube-node-lease"
RS = resources.by_key("replicasets.apps")
DEPLOY = resources.by_key("deployments.apps")
NS = "default"
EVICTION = {"apiVersion": "policy/v1", "kind": "Eviction"}


def pod(
    store: Store, name: str, ready: bool = True, owner: dict[str, Any] | None = None, node: str = ""
) -> None:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "web"}]}
    if node:
        spec["nodeName"] = node
    store.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}, NS)
    current = store.get(PODS, NS, name)
    current["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    store.update(PODS, NS, name, current, subresource="status")


def budget(store: Store, **spec: Any) -> None:
    store.create(
        PDBS,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
        },
        NS,
    )


def workload(store: Store, rt: resources.ResourceType, name: str, replicas: int, owner: Any = None) -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    created = store.create(
        rt,
        {
            "apiVersion": "apps/v1",
            "kind": rt.kind,
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
            },
        },
        NS,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": rt.kind,
        "name": name,
        "uid": created["metadata"]["uid"],
        "controller": True,
    }


def status(store: Store) -> dict[str, Any]:
    DisruptionController(store).reconcile()
    return dict(store.get(PDBS, NS, "web")["status"])


def counts(found: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        found["expectedPods"],
        found["currentHealthy"],
        found["desiredHealthy"],
        found["disruptionsAllowed"],
    )


def test_min_available_number_counts_the_matching_pods_and_their_health() -> None:
    store = Store()
    for name, ready in (("a", True), ("b", True), ("c", False)):
        pod(store, name, ready)
    budget(store, minAvailable=2)
    found = status(store)
    assert counts(found) == (3, 2, 2, 0)
    assert found["observedGeneration"] == 1
    (allowed,) = found["conditions"]
    assert (allowed["type"], allowed["status"], allowed["reason"]) == (
        "DisruptionAllowed",
        "False",
        "InsufficientPods",
    )
    pod(store, "d")
    found = status(store)
    assert counts(found) == (4, 3, 2, 1)
    assert found["conditions"][0]["status"] == "True"
    assert found["conditions"][0]["reason"] == "SufficientPods"


def test_percentages_and_max_unavailable_take_the_expected_count_from_the_workload() -> None:
    store = Store()
    owner = workload(store, DEPLOY, "web", 4)
    rs = workload(store, RS, "web-1234", 4, owner)
    for name in ("a", "b", "c"):  # one of the four replicas is not there yet
        pod(store, name, owner=rs)
    budget(store, minAvailable="50%")
    assert counts(status(store)) == (4, 3, 2, 1)

    store.delete(PDBS, NS, "web")
    budget(store, maxUnavailable=1)
    assert counts(status(store)) == (4, 3, 3, 0)

    store.delete(PDBS, NS, "web")
    budget(store, maxUnavailable="50%")
    assert counts(status(store)) == (4, 3, 2, 1)


def test_pods_without_a_controller_count_themselves() -> None:
    store = Store()
    for name in ("a", "b", "c"):
        pod(store, name)
    budget(store, maxUnavailable="34%")  # ceil(3 * 34%) = 2 may be unavailable
    assert counts(status(store)) == (3, 3, 1, 2)


def test_eviction_spends_the_budget_at_once_then_is_refused_with_429() -> None:
    store = Store(graceful_pods=True)
    for name in ("a", "b", "c"):
        pod(store, name, node="node-1")
    budget(store, minAvailable=2)
    assert status(store)["disruptionsAllowed"] == 1

    result = evict(store, NS, "a", {**EVICTION, "deleteOptions": {"gracePeriodSeconds": 7}})
    assert result["status"] == "Success"
    gone = store.get(PODS, NS, "a")
    assert gone["metadata"]["deletionTimestamp"]
    assert gone["metadata"]["deletionGracePeriodSeconds"] == 7  # deleteOptions honoured
    spent = store.get(PDBS, NS, "web")["status"]
    assert spent["disruptionsAllowed"] == 0
    assert "a" in spent["disruptedPods"]

    # a second eviction right after (no controller pass in between) must not pass
    with pytest.raises(ApiError) as refused:
        evict(store, NS, "b", EVICTION)
    assert refused.value.code == 429
    body = refused.value.status()
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == REFUSED == "Cannot evict pod as it would violate the pod's disruption budget."
    (cause,) = body["details"]["causes"]
    assert cause["reason"] == "DisruptionBudget"
    # the count is the status as last written (upstream's wording, and its staleness too)
    assert cause["message"].startswith("The disruption budget web needs 2 healthy pods and has ")
    assert store.get(PODS, NS, "b")["metadata"].get("deletionTimestamp") is None

    # once the evicted pod is gone and a replacement is Ready, the budget allows one again
    store.delete(PODS, NS, "a", grace_period=0)
    pod(store, "d", node="node-1")
    assert status(store)["disruptionsAllowed"] == 1
    evict(store, NS, "b", EVICTION)


def test_pods_without_a_budget_and_terminated_pods_are_evicted_freely() -> None:
    store = Store()
    pod(store, "a")
    evict(store, NS, "a", EVICTION)
    budget(store, minAvailable=5)
    pod(store, "done")
    finished = store.get(PODS, NS, "done")
    finished["status"]["phase"] = "Succeeded"
    store.update(PODS, NS, "done", finished, subresource="status")
    status(store)
    evict(store, NS, "done", EVICTION)
    assert not list(store.iter_objects(PODS, NS))


async def test_the_eviction_subresource_is_served_and_advertised() -> None:
    store = Store()
    for name in ("a", "b"):
        pod(store, name)
    budget(store, minAvailable=1)
    status(store)
    transport = httpx.ASGITransport(app=KubeApp(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        listed = (await client.get("/api/v1")).json()["resources"]
        entry = next(r for r in listed if r["name"] == "pods/eviction")
        assert (entry["kind"], entry["group"], entry["version"], entry["verbs"]) == (
            "Eviction",
            "policy",
            "v1",
            ["create"],
        )
        url = f"/api/v1/namespaces/{NS}/pods/%s/eviction"
        body = {**EVICTION, "metadata": {"namespace": NS}}
        allowed = await client.post(url % "a", content=json.dumps({**body, "metadata": {"name": "a"}}))
        assert allowed.status_code == 201, allowed.text
        refused = await client.post(url % "b", content=json.dumps({**body, "metadata": {"name": "b"}}))
        assert refused.status_code == 429
        assert refused.json()["kind"] == "Status"
        assert refused.json()["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert [p["metadata"]["name"] for p in store.iter_objects(PODS, NS)] == ["b"]


async def test_removing_a_node_drains_it_as_budgets_allow_then_terminates_and_deletes_it() -> None:
    """`sim.eks.drain.remove_node`: the budget allows one eviction; the pod it protects is deleted anyway
    once the wait is over; the machine is terminated while its Node is still there (cordoned), and what
    it leaves is deleted after: the pod still stopping, its Lease, its Node. Other nodes' pods stay."""
    store = Store(graceful_pods=True)  # no kubelet here: an evicted pod stays, being deleted
    store.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})
    lease = {"metadata": {"name": "node-1", "namespace": LEASE_NS}, "spec": {"holderIdentity": "node-1"}}
    store.create(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", **lease}, LEASE_NS)
    for name in ("a", "b"):
        pod(store, name, node="node-1")
    pod(store, "elsewhere", node="node-2")
    budget(store, minAvailable=2)
    assert status(store)["disruptionsAllowed"] == 1
    at_termination: dict[str, Any] = {}

    async def terminate(node: str) -> None:
        at_termination["unschedulable"] = store.get(NODES, None, node)["spec"].get("unschedulable")
        at_termination["pods"] = {
            p["metadata"]["name"]: bool(p["metadata"].get("deletionTimestamp")) for p in pods_on(store, node)
        }

    await remove_node(store, "node-1", terminate, budget_wait=0.3)
    # "a" was evicted (still stopping: nobody confirms here); "b" was refused, then deleted with grace 0
    assert at_termination == {"unschedulable": True, "pods": {"a": True}}
    assert [p["metadata"]["name"] for p in store.iter_objects(PODS)] == ["elsewhere"]
    for rt, namespace in ((LEASES, LEASE_NS), (NODES, None)):
        with pytest.raises(ApiError):
            store.get(rt, namespace, "node-1")


# -- `kubectl drain` against a real local cluster (two nodes, pods of the payment image as processes)

POD_CIDR = "127.101.0.0/16"
DRAIN = ("drain", "node-1", "--ignore-daemonsets", "--delete-emptydir-data")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(
        tmp_path_factory.mktemp("drain"), image_store, POD_CIDR, nodes=("node-1", "node-2")
    )
    try:
        yield running
    finally:
        running.process.stop(grace=20)


def manifest_pdb(app: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": app, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
        }
    )


def manifest_pod(image: str, name: str, app: str, node: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 5,
                "containers": [payment_container(image)],
            },
        }
    )


def live_pods(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    """The app's pods that are not being deleted."""
    items = get_json(cluster.kubectl, "pods", "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def allowed(cluster: Cluster, app: str, count: int) -> bool:
    pdb = get_json(cluster.kubectl, "pdb", app)
    return bool(pdb.get("status", {}).get("disruptionsAllowed") == count)


def uncordon_all(cluster: Cluster) -> None:
    for node in ("node-1", "node-2"):
        cluster.kubectl("uncordon", node)


def test_drain_evicts_bare_pods_only_as_far_as_the_budget_allows(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    for name in ("pay-a", "pay-b"):
        kubectl("apply", "-f", "-", input=manifest_pod(payment_image.reference, name, "pay", "node-1"))
    kubectl("apply", "-f", "-", input=manifest_pdb("pay", minAvailable=2))
    kubectl("wait", "--for=condition=Ready", "pod/pay-a", "pod/pay-b", "--timeout=60s")
    assert poll(lambda: allowed(cluster, "pay", 0))
    try:
        # the budget forbids any eviction: drain cordons, keeps retrying, and gives up at its timeout
        refused = kubectl.run(*DRAIN, "--force", "--timeout=8s", check=False)
        assert refused.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in refused.stderr
        assert "will retry after 5s" in refused.stderr
        assert get_json(kubectl, "node", "node-1")["spec"]["unschedulable"] is True
        assert sorted(p["metadata"]["name"] for p in live_pods(cluster, "pay")) == ["pay-a", "pay-b"]

        # one disruption allowed: drain evicts one pod and keeps retrying the other ...
        kubectl("apply", "-f", "-", input=manifest_pdb("pay", minAvailable=1))
        drain = kubectl.popen(*DRAIN, "--force", "--timeout=90s")
        try:
            assert poll(lambda: len(live_pods(cluster, "pay")) == 1, within=30), "no pod was evicted"
            time_to_retry = poll(lambda: drain.poll() is not None, within=7)
            assert not time_to_retry, "drain ended while the budget forbade evicting the second pod"
            assert len(live_pods(cluster, "pay")) == 1
            # ... until the budget permits it
            kubectl("apply", "-f", "-", input=manifest_pdb("pay", minAvailable=0))
            out, err = drain.communicate(timeout=60)
        finally:
            if drain.poll() is None:
                drain.kill()
                drain.communicate()
        assert drain.returncode == 0, err
        assert "node/node-1 drained" in out
        assert poll(lambda: not get_json(kubectl, "pods", "-l", "app=pay")["items"], within=30)
    finally:
        uncordon_all(cluster)
        kubectl("delete", "pdb", "pay", "--ignore-not-found")
        kubectl("delete", "pods", "-l", "app=pay", "--ignore-not-found", "--timeout=30s")


def manifest_deployment(image: str, app: str, replicas: int) -> str:
    container = payment_container(image, requests={"memory": "64Mi"})
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app, "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
                },
            },
        }
    )


def test_drain_moves_a_deployment_to_the_other_node_keeping_its_budget(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    try:
        kubectl("cordon", "node-2")  # both replicas start on node-1
        kubectl("apply", "-f", "-", input=manifest_deployment(payment_image.reference, "shop", 2))
        kubectl("apply", "-f", "-", input=manifest_pdb("shop", minAvailable=1))
        kubectl("rollout", "status", "deployment/shop", "--timeout=90s")
        assert {p["spec"]["nodeName"] for p in live_pods(cluster, "shop")} == {"node-1"}
        assert poll(lambda: allowed(cluster, "shop", 1))
        kubectl("uncordon", "node-2")

        drain = kubectl.popen(*DRAIN, "--timeout=120s")
        fewest_ready = 2
        try:
            for _ in range(600):  # bounded: at most ~2 minutes of samples
                if drain.poll() is not None:
                    break
                ready = [
                    p for p in live_pods(cluster, "shop") if condition(p, "Ready").get("status") == "True"
                ]
                fewest_ready = min(fewest_ready, len(ready))
                time.sleep(0.2)
            out, err = drain.communicate(timeout=30)
        finally:
            if drain.poll() is None:
                drain.kill()
                drain.communicate()
        assert drain.returncode == 0, err
        assert "node/node-1 drained" in out
        assert fewest_ready >= 1, "the budget (minAvailable 1) was broken while draining"
        # the second eviction had to wait for a replacement to turn Ready on node-2
        assert "Cannot evict pod as it would violate the pod's disruption budget." in err
        kubectl("rollout", "status", "deployment/shop", "--timeout=90s")
        moved = live_pods(cluster, "shop")
        assert len(moved) == 2
        assert {p["spec"]["nodeName"] for p in moved} == {"node-2"}
    finally:
        uncordon_all(cluster)
        kubectl("delete", "pdb", "shop", "--ignore-not-found")
        kubectl("delete", "deployment", "shop", "--ignore-not-found", "--timeout=60s")
