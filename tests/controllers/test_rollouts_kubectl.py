"""Deployments and StatefulSets on a real local cluster (API server, controllers, process kubelet), driven
by the real kubectl: rollouts, history, undo, restart, scale, wait; pods restarted by the kubelet and
replaced by their ReplicaSet; garbage collection of ReplicaSets, pods and their processes; StatefulSet
pods in order. Pods run the payment image as processes (few at a time: each is ~80 MB)."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from containers.nodestore import ImageStore
from tests.conftest import BuiltImage
from tests.kubelet.helpers import alive
from tests.support.cluster import Cluster, condition, get_json, payment_container, poll, start_cluster

pytestmark = pytest.mark.timeout(300)

POD_CIDR = "127.81.0.0/16"
REVISION = "deployment.kubernetes.io/revision"
ROLLOUT_TIMEOUT = "--timeout=120s"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("rollouts"), image_store, POD_CIDR)
    try:
        yield running
    finally:
        running.process.stop(grace=20)


def workload(kind: str, name: str, image: str, replicas: int, version: str = "1") -> str:
    """A Deployment or StatefulSet manifest (JSON) of the payment container, `VERSION` in its env."""
    container = payment_container(image)
    container["env"].append({"name": "VERSION", "value": version})
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    manifest = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "default"}}
    return json.dumps({**manifest, "spec": spec})


def pods_of(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    return list(get_json(cluster.kubectl, "pods", "-l", f"app={app}")["items"])


def pid_of(pod: dict[str, Any]) -> int:
    (status,) = pod["status"]["containerStatuses"]
    return int(status["containerID"].removeprefix("process://"))


def ready_pods(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    return [
        p
        for p in pods_of(cluster, app)
        if condition(p, "Ready").get("status") == "True" and not p["metadata"].get("deletionTimestamp")
    ]


def replicasets(cluster: Cluster, app: str) -> dict[str, dict[str, Any]]:
    """The app's ReplicaSets by revision."""
    items = get_json(cluster.kubectl, "rs", "-l", f"app={app}")["items"]
    return {rs["metadata"]["annotations"][REVISION]: rs for rs in items}


def version_of(pod_spec: dict[str, Any]) -> str:
    """The `VERSION` env value of a pod spec's one container."""
    (container,) = pod_spec["containers"]
    return str(next(e["value"] for e in container["env"] if e["name"] == "VERSION"))


def history_revisions(cluster: Cluster, name: str) -> list[str]:
    out = cluster.kubectl("rollout", "history", f"deploy/{name}")
    lines = out.strip().split("\n")
    assert lines[1].split()[0] == "REVISION", out
    return [line.split()[0] for line in lines[2:] if line.strip()]


def test_deployment_rolls_out_undoes_restarts_scales_and_is_collected(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    image = payment_image.reference
    kubectl("apply", "-f", "-", input=workload("Deployment", "web", image, 2))
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", ROLLOUT_TIMEOUT)
    pods = ready_pods(cluster, "web")
    assert len(pods) == 2
    assert all(alive(pid_of(p)) and p["status"]["podIP"].startswith("127.81.") for p in pods)
    (first,) = replicasets(cluster, "web").values()
    assert first["metadata"]["name"] == f"web-{first['metadata']['labels']['pod-template-hash']}"
    assert all(p["metadata"]["ownerReferences"][0]["name"] == first["metadata"]["name"] for p in pods)

    # a new template: a new ReplicaSet at revision 2, the old one scaled to 0
    kubectl("apply", "-f", "-", input=workload("Deployment", "web", image, 2, version="2"))
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", ROLLOUT_TIMEOUT)
    by_revision = replicasets(cluster, "web")
    assert sorted(by_revision) == ["1", "2"]
    assert by_revision["1"]["spec"]["replicas"] == 0
    assert by_revision["2"]["spec"]["replicas"] == 2
    deploy = get_json(kubectl, "deploy", "web")
    assert deploy["metadata"]["annotations"][REVISION] == "2"
    assert condition(deploy, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert history_revisions(cluster, "web") == ["1", "2"]
    # (the old pods may still be terminating: they no longer count)
    assert {version_of(p["spec"]) for p in ready_pods(cluster, "web")} == {"2"}

    # undo brings revision 1's template back, as revision 3 (the same ReplicaSet)
    assert "rolled back" in kubectl("rollout", "undo", "deploy/web")
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", ROLLOUT_TIMEOUT)
    deploy = get_json(kubectl, "deploy", "web")
    assert deploy["metadata"]["annotations"][REVISION] == "3"
    assert version_of(deploy["spec"]["template"]["spec"]) == "1"
    by_revision = replicasets(cluster, "web")
    assert sorted(by_revision) == ["2", "3"]
    assert by_revision["3"]["metadata"]["name"] == first["metadata"]["name"]
    assert history_revisions(cluster, "web") == ["2", "3"]

    # restart: a new template annotation, so a new revision with new pods
    before = {p["metadata"]["name"] for p in ready_pods(cluster, "web")}
    assert "restarted" in kubectl("rollout", "restart", "deploy/web")
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", ROLLOUT_TIMEOUT)
    assert get_json(kubectl, "deploy", "web")["metadata"]["annotations"][REVISION] == "4"
    after = {p["metadata"]["name"] for p in ready_pods(cluster, "web")}
    assert len(after) == 2
    assert not after & before

    # scale through the scale subresource reaches the ReplicaSet
    assert "scaled" in kubectl("scale", "deploy/web", "--replicas=3")
    kubectl("wait", "--for=condition=Available", "deploy/web", ROLLOUT_TIMEOUT)
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/web", ROLLOUT_TIMEOUT)
    assert replicasets(cluster, "web")["4"]["spec"]["replicas"] == 3
    pods = poll(lambda: ready_pods(cluster, "web") if len(ready_pods(cluster, "web")) == 3 else [])
    assert len(pods) == 3
    status = get_json(kubectl, "deploy", "web")["status"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (3, 3, 3)
    pids = [pid_of(p) for p in pods]
    assert all(alive(pid) for pid in pids)

    # deleting the Deployment collects its ReplicaSets, pods and their processes
    kubectl("delete", "deploy", "web", "--timeout=60s")
    assert poll(lambda: not replicasets(cluster, "web") and not pods_of(cluster, "web"), within=60)
    assert poll(lambda: not any(alive(pid) for pid in pids), within=30)


def test_killed_pods_are_restarted_and_deleted_pods_replaced(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", input=workload("Deployment", "solo", payment_image.reference, 1))
    assert "successfully rolled out" in kubectl("rollout", "status", "deploy/solo", ROLLOUT_TIMEOUT)
    (pod,) = ready_pods(cluster, "solo")
    name, pid = pod["metadata"]["name"], pid_of(pod)

    os.kill(pid, signal.SIGKILL)  # the kubelet restarts the container in the same pod

    def restarted() -> dict[str, Any] | None:
        for again in ready_pods(cluster, "solo"):
            statuses = again["status"]["containerStatuses"]
            if again["metadata"]["name"] == name and statuses[0]["restartCount"] >= 1:
                return again
        return None

    again = poll(restarted, within=90)
    assert again, pods_of(cluster, "solo")
    assert pid_of(again) != pid
    assert alive(pid_of(again))

    kubectl("delete", "pod", name, "--timeout=60s")  # the ReplicaSet makes a replacement

    def replaced() -> list[dict[str, Any]]:
        return [p for p in ready_pods(cluster, "solo") if p["metadata"]["name"] != name]

    (replacement,) = poll(replaced, within=90)
    owner = replacement["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["controller"], owner["blockOwnerDeletion"]) == ("ReplicaSet", True, True)
    assert not alive(pid_of(again))
    events = get_json(kubectl, "events")["items"]
    created = [e["message"] for e in events if e["reason"] == "SuccessfulCreate"]
    assert f"Created pod: {replacement['metadata']['name']}" in created
    kubectl("delete", "deploy", "solo", "--timeout=60s")
    assert poll(lambda: not pods_of(cluster, "solo"), within=60)


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def test_statefulset_pods_come_in_order(cluster: Cluster, payment_image: BuiltImage) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", input=workload("StatefulSet", "db", payment_image.reference, 2))
    assert "roll out complete" in kubectl("rollout", "status", "sts/db", ROLLOUT_TIMEOUT)
    zero, one = sorted(ready_pods(cluster, "db"), key=lambda p: str(p["metadata"]["name"]))
    assert (zero["metadata"]["name"], one["metadata"]["name"]) == ("db-0", "db-1")
    # db-1 was created only once db-0 was Ready
    assert _stamp(one["metadata"]["creationTimestamp"]) >= _stamp(
        condition(zero, "Ready")["lastTransitionTime"]
    )
    assert one["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
    status = get_json(kubectl, "sts", "db")["status"]
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (2, 2, 2)
    assert status["currentRevision"] == status["updateRevision"]
    kubectl("delete", "sts", "db", "--timeout=60s")
    assert poll(lambda: not pods_of(cluster, "db"), within=60)


def test_describe_pod_shows_the_kubelet_events_counted_not_repeated(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    manifest = json.loads(workload("Deployment", "unready", payment_image.reference, 1))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["path"] = "/missing"
    container["resources"] = {"limits": {"memory": "256Mi"}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def failed_probes() -> list[dict[str, Any]]:
        events = get_json(cluster.kubectl, "events", "--field-selector", "reason=Unhealthy")["items"]
        return [e for e in events if e["involvedObject"]["name"].startswith("unready-") and e["count"] >= 3]

    (unhealthy,) = poll(failed_probes, within=60)
    assert unhealthy["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 404"
    assert unhealthy["source"] == {"component": "kubelet", "host": "node-1"}
    (pod,) = pods_of(cluster, "unready")
    described = cluster.kubectl("describe", "pod", pod["metadata"]["name"])
    for line in ("Pulled", "Created container app", "Started container app"):
        assert line in described, described
    # what the API server defaults: the probe's scheme and thresholds, the request from the limit, the QoS
    assert (
        "Readiness:  http-get http://:http/missing delay=0s timeout=1s period=1s #success=1 #failure=3"
        in described
    )
    assert re.search(r"Requests:\s+memory:\s+256Mi", described)
    assert re.search(r"QoS Class:\s+Burstable", described)
    assert re.search(
        r"Warning\s+Unhealthy\s+\S+ \(x\d+ over \S+\)\s+kubelet\s+Readiness probe failed", described
    )
    cluster.kubectl("delete", "deployment", "unready", "--timeout=60s")
    assert "Stopping container app" in cluster.kubectl("get", "events", "--field-selector", "reason=Killing")
