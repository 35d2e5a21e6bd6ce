"""A shop service as the deploy will run it, on the local cluster with two nodes, through the real kubectl:
a Deployment of the payment service from its image becomes Available, answers through its Service name
from another pod, rolls to a new version with no failed request under a steady load from that pod, and
comes back after its process is killed."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from containers.nodestore import ImageStore
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, get_json, payment_container, poll, start_cluster

ADDRESSES = "127.121.0.0/16"
#: The load pod's requests: one every 20 ms for at most this long (bounded), then it prints its tally.
LOAD_SECONDS = 30
LOAD = f"""
import time, urllib.request
ok = failed = 0
deadline = time.monotonic() + {LOAD_SECONDS}
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen("http://payment:8080/healthz", timeout=2) as answer:
            ok += answer.status == 200
            failed += answer.status != 200
    except Exception as err:
        failed += 1
        print("failed:", err, flush=True)
    time.sleep(0.02)
print(f"ok={{ok}} failed={{failed}}", flush=True)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(
        tmp_path_factory.mktemp("shop"), image_store, ADDRESSES, nodes=("node-1", "node-2")
    )
    try:
        yield running
    finally:
        running.process.stop(grace=20)


def payment(image: str, version: str) -> list[dict[str, Any]]:
    container = payment_container(image)
    container["env"].append({"name": "SERVICE_VERSION", "value": version})
    # as in the deploy's manifests: the endpoint goes before the process stops taking connections
    container["lifecycle"] = {
        "preStop": {"exec": {"command": ["python", "-c", "import time; time.sleep(2)"]}}
    }
    labels = {"app": "payment"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "payment", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"terminationGracePeriodSeconds": 10, "containers": [container]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "payment", "namespace": "default"},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
        },
    ]


def load_pod(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "load", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "load", "image": image, "command": ["python", "-c", LOAD]}],
        },
    }


def apply(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def test_a_shop_service_deploys_rolls_without_a_failed_request_and_restarts(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    apply(cluster, payment(payment_image.reference, "1"))
    kubectl("rollout", "status", "deploy/payment", "--timeout=90s")
    first = get_json(kubectl, "pods", "-l", "app=payment")["items"]
    assert len(first) == 2
    assert all(p["status"]["containerStatuses"][0]["ready"] for p in first)

    apply(cluster, [load_pod(payment_image.reference)])
    kubectl("wait", "--for=condition=Ready", "pod/load", "--timeout=60s")
    apply(cluster, payment(payment_image.reference, "2"))
    kubectl("rollout", "status", "deploy/payment", "--timeout=90s")
    finished = poll(lambda: get_json(kubectl, "pod", "load")["status"]["phase"] == "Succeeded", within=60)
    logs = kubectl("logs", "load")
    assert finished, logs
    tally = logs.strip().splitlines()[-1]
    ok, failed = (int(part.split("=")[1]) for part in tally.split())
    assert failed == 0, logs
    assert ok > 100, logs

    second = get_json(kubectl, "pods", "-l", "app=payment")["items"]
    assert {p["metadata"]["name"] for p in second}.isdisjoint(p["metadata"]["name"] for p in first)
    assert (
        get_json(kubectl, "deploy", "payment")["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        == "2"
    )
    env = {e["name"]: e["value"] for e in second[0]["spec"]["containers"][0]["env"]}
    assert env["SERVICE_VERSION"] == "2"

    victim = second[0]
    pid = int(victim["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
    os.kill(pid, signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        pod = get_json(kubectl, "pod", victim["metadata"]["name"])
        status = pod["status"]["containerStatuses"][0]
        return pod if status["restartCount"] >= 1 and status["ready"] else None

    back = poll(restarted, within=60)
    assert back, "the killed container was not restarted to Ready"
    kubectl("wait", "--for=condition=Available", "deploy/payment", "--timeout=60s")
