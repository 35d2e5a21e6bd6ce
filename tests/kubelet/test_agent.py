"""The node agent and scheduler in the API server's process (`python -m sim.cluster --node ...`), driven
by the real kubectl: the node registers Ready, a pod of the payment image runs as a process on its own
loopback address, turns Ready, logs, and stops on delete; a pod too big for the node stays Pending; a
ConfigMap changed through the API reaches the running pod that mounts it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from containers.nodestore import ImageStore
from kube.requests import pod_requests
from sim.controllers.scheduler import place
from tests.conftest import BuiltImage
from tests.kubelet.helpers import alive
from tests.support.cluster import Cluster, condition, get_json, payment_pod, poll, start_cluster

NODE = "node-1"
POD_CIDR = "127.71.0.0/16"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("agent"), image_store, POD_CIDR)
    try:
        yield running
    finally:
        running.process.stop(grace=10)


def test_node_registers_ready_and_renews_its_lease(cluster: Cluster) -> None:
    table = cluster.kubectl("get", "nodes")
    assert table.split("\n")[1].split()[:2] == [NODE, "Ready"], table
    node = get_json(cluster.kubectl, "node", NODE)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    assert node["status"]["allocatable"] == {**node["status"]["capacity"]}
    assert {k: node["status"]["capacity"][k] for k in ("cpu", "memory", "pods")} == {
        "cpu": "2",
        "memory": "4Gi",
        "pods": "17",
    }
    # a node outside EKS is this machine: its address is the loopback address its processes share
    assert node["status"]["addresses"] == [
        {"type": "InternalIP", "address": "127.0.0.1"},
        {"type": "Hostname", "address": NODE},
    ]
    assert node["metadata"]["labels"]["beta.kubernetes.io/os"] == "linux"
    ready = condition(node, "Ready")
    assert ready["status"] == "True"
    assert ready["lastHeartbeatTime"]
    lease = get_json(cluster.kubectl, "lease", "-n", "kube-node-lease", NODE)
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["spec"]["renewTime"]


def test_pod_runs_as_a_process_turns_ready_logs_and_stops_on_delete(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", input=payment_pod(payment_image.reference, "payment"))
    kubectl("wait", "--for=condition=Ready", "pod/payment", "--timeout=60s")
    pod = get_json(kubectl, "pod", "payment")
    assert pod["spec"]["nodeName"] == NODE
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["hostIP"] == "127.0.0.1"
    assert pod["status"]["podIP"].startswith("127.71.")
    assert condition(pod, "PodScheduled")["status"] == "True"
    # created (1) and bound by the scheduler (2); the kubelet's status writes leave the generation alone
    assert pod["metadata"]["generation"] == 2
    (container,) = pod["status"]["containerStatuses"]
    assert container["ready"] is True
    assert "running" in container["state"]
    pid = int(container["containerID"].removeprefix("process://"))
    assert alive(pid)
    with httpx.Client(timeout=5, trust_env=False) as client:
        assert client.get(f"http://{pod['status']['podIP']}:8080/healthz").status_code == 200
    logs = poll(lambda: kubectl("logs", "payment"))
    assert logs, "kubectl logs showed nothing"
    assert kubectl("get", "pod", "payment").split("\n")[1].split()[1:3] == ["1/1", "Running"]

    kubectl("delete", "pod", "payment", "--timeout=30s")
    assert not alive(pid)
    missing = kubectl.run("get", "pod", "payment", check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr


def test_a_pod_bigger_than_the_node_stays_pending_unschedulable(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    big = payment_pod(payment_image.reference, "too-big", requests={"memory": "64Gi"})
    kubectl("apply", "-f", "-", input=big)

    def unschedulable() -> dict[str, Any] | None:
        pod = get_json(kubectl, "pod", "too-big")
        return pod if condition(pod, "PodScheduled").get("reason") == "Unschedulable" else None

    pod = poll(unschedulable)
    assert pod, "the pod was never marked Unschedulable"
    scheduled = condition(pod, "PodScheduled")
    assert scheduled["status"] == "False"
    assert "Insufficient memory" in scheduled["message"]
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
    events = get_json(kubectl, "events")["items"]
    reasons = [(e["reason"], e["message"]) for e in events if e["involvedObject"]["name"] == "too-big"]
    assert ("FailedScheduling", "0/1 nodes are available: 1 Insufficient memory.") in reasons
    kubectl("delete", "pod", "too-big", "--timeout=30s")


def test_shutting_the_server_down_stops_its_pods(
    tmp_path: Path, image_store: ImageStore, payment_image: BuiltImage
) -> None:
    running = start_cluster(tmp_path, image_store, "127.72.0.0/16")
    try:
        running.kubectl("apply", "-f", "-", input=payment_pod(payment_image.reference, "payment"))
        running.kubectl("wait", "--for=condition=Ready", "pod/payment", "--timeout=60s")
        pod = get_json(running.kubectl, "pod", "payment")
        pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
        assert alive(pid)
    finally:
        code = running.process.stop(grace=15)
    assert code == 0, running.process.log_tail()
    assert not alive(pid)


def test_a_killed_server_takes_its_pods_with_it(
    tmp_path: Path, image_store: ImageStore, payment_image: BuiltImage
) -> None:
    running = start_cluster(tmp_path, image_store, "127.73.0.0/16")
    try:
        running.kubectl("apply", "-f", "-", input=payment_pod(payment_image.reference, "payment"))
        running.kubectl("wait", "--for=condition=Ready", "pod/payment", "--timeout=60s")
        pod = get_json(running.kubectl, "pod", "payment")
        pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
        running.process.signal(signal.SIGKILL)
        assert poll(lambda: not alive(pid), within=10), "the pod's process outlived its SIGKILLed kubelet"
    finally:
        running.process.stop(grace=5)
        with contextlib.suppress(ProcessLookupError, UnboundLocalError):
            os.kill(pid, signal.SIGKILL)


# -- the scheduler's arithmetic, without processes


def _node(name: str, ready: bool = True, **alloc: str) -> dict[str, Any]:
    allocatable = {"cpu": "2", "memory": "4Gi", "pods": "17", **alloc}
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _pod(node: str | None = None, phase: str = "Running", **requests: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "a", "resources": {"requests": requests}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": "p"}, "spec": spec, "status": {"phase": phase}}


def test_requests_sum_containers_and_default_to_limits() -> None:
    pod = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            ]
        }
    }
    want = pod_requests(pod)
    assert (float(want.cpu), want.memory, want.pods) == (1.25, (64 + 1024) << 20, 1)


def test_place_picks_a_fitting_node_and_explains_a_miss() -> None:
    nodes = [_node("a", memory="1Gi"), _node("b", memory="2Gi"), _node("c", ready=False)]
    running = [_pod("a", memory="1Gi"), _pod("b", memory="1Gi"), _pod("b", phase="Succeeded", memory="1Gi")]
    assert place(_pod(memory="512Mi"), nodes, running) == ("b", "")
    node, why = place(_pod(memory="3Gi", cpu="3"), nodes, running)
    assert node is None
    assert (
        why == "0/3 nodes are available: 2 Insufficient cpu, 2 Insufficient memory, 1 node(s) were not ready."
    )
    full = [_node("a", pods="1")]
    assert place(_pod(), full, [_pod("a")]) == (None, "0/1 nodes are available: 1 Too many pods.")


def test_a_changed_config_map_reaches_the_running_pod_that_mounts_it(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    kubectl("create", "configmap", "flags", "--from-literal=flags.json=first")
    reader = (
        "import os, time\n"
        "for _ in range(600):\n"
        "    print(open(os.environ['FLAGS_FILE']).read(), flush=True)\n"
        "    time.sleep(0.1)\n"
    )
    manifest: dict[str, Any] = json.loads(payment_pod(payment_image.reference, "reader"))
    spec = manifest["spec"]
    spec["containers"][0] |= {
        "command": ["python", "-c", reader],
        "env": [{"name": "FLAGS_FILE", "value": "/etc/flags/flags.json"}],
        "volumeMounts": [{"name": "flags", "mountPath": "/etc/flags", "readOnly": True}],
    }
    spec["containers"][0].pop("readinessProbe", None)
    spec["volumes"] = [{"name": "flags", "configMap": {"name": "flags"}}]
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    try:
        kubectl("wait", "--for=condition=Ready", "pod/reader", "--timeout=60s")
        assert poll(lambda: "first" in kubectl("logs", "reader"))
        kubectl("patch", "configmap", "flags", "--type=merge", "-p", '{"data": {"flags.json": "second"}}')
        assert poll(lambda: "second" in kubectl("logs", "reader"))
        assert get_json(kubectl, "pod", "reader")["status"]["containerStatuses"][0]["restartCount"] == 0
    finally:
        kubectl("delete", "pod", "reader", "--timeout=30s")
        kubectl("delete", "configmap", "flags")
