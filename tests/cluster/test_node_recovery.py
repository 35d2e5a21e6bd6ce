"""A node that goes Unknown and comes back before its pods are evicted, on the local cluster through the
real kubectl. The node monitor's grace period (5 s) is shorter than the kubelet's heartbeat (10 s), so the
node misses its heartbeat every period: it turns Unknown, its pods are marked not Ready and leave the
Service's ready endpoints; at the next heartbeat it is Ready again, and so are its pods, back in the
Endpoints and EndpointSlices, with the same containers (none restarted) long before the 300 s eviction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from containers.nodestore import ImageStore
from tests.conftest import BuiltImage
from tests.k8s.conftest import Kubectl
from tests.support.cluster import Cluster, condition, get_json, payment_container, poll, start_cluster

ADDRESSES = "127.123.0.0/16"
NODE = "node-1"
GRACE_SECONDS = 5  # --node-monitor-grace-period, under the kubelet's 10 s heartbeat
HEARTBEAT_SECONDS = 10
LABELS = {"app": "payment"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(
        tmp_path_factory.mktemp("recovery"),
        image_store,
        ADDRESSES,
        nodes=(NODE,),
        extra_args=("--node-monitor-grace-period", str(GRACE_SECONDS)),
    )
    try:
        yield running
    finally:
        running.process.stop(grace=20)


def payment(image: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "payment", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {"terminationGracePeriodSeconds": 5, "containers": [payment_container(image)]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "payment", "namespace": "default"},
            "spec": {"selector": LABELS, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
        },
    ]


@dataclass(frozen=True)
class View:
    """What kubectl shows of the node, the payment pods and the Service's endpoints at one moment."""

    node_ready: str
    #: pod name -> (Ready condition, uid, container id, restart count)
    pods: dict[str, tuple[str, str, str, int]]
    ready_addresses: frozenset[str]
    not_ready_addresses: frozenset[str]
    #: pod address -> the EndpointSlice's `conditions.ready`
    slice_ready: dict[str, bool]

    def describe(self) -> str:
        return json.dumps(self.__dict__, default=sorted)

    @property
    def pod_readiness(self) -> set[str]:
        return {ready for ready, _, _, _ in self.pods.values()}

    @classmethod
    def of(cls, kubectl: Kubectl) -> View:
        node = get_json(kubectl, "node", NODE)
        pods = get_json(kubectl, "pods", "-l", "app=payment")["items"]
        endpoints = get_json(kubectl, "endpoints", "payment")
        slices = get_json(kubectl, "endpointslices", "-l", "kubernetes.io/service-name=payment")["items"]
        subsets = endpoints.get("subsets") or []
        return cls(
            node_ready=condition(node, "Ready").get("status", ""),
            pods={
                p["metadata"]["name"]: (
                    condition(p, "Ready").get("status", ""),
                    p["metadata"]["uid"],
                    p["status"]["containerStatuses"][0].get("containerID", ""),
                    p["status"]["containerStatuses"][0]["restartCount"],
                )
                for p in pods
            },
            ready_addresses=frozenset(a["ip"] for s in subsets for a in s.get("addresses") or []),
            not_ready_addresses=frozenset(a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []),
            slice_ready={
                address: bool(e["conditions"].get("ready"))
                for s in slices
                for e in s.get("endpoints") or []
                for address in e["addresses"]
            },
        )


def running_containers(kubectl: Kubectl) -> list[dict[str, Any]] | None:
    pods = get_json(kubectl, "pods", "-l", "app=payment")["items"]
    statuses = [(p["status"].get("containerStatuses") or [{}])[0] for p in pods]
    return pods if len(pods) == 2 and all(s.get("ready") for s in statuses) else None


def test_pods_of_a_node_back_from_unknown_are_ready_again_without_a_restart(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(payment(payment_image.reference)))
    started = poll(lambda: running_containers(kubectl), within=90)
    assert started, "the payment pods' containers did not become ready"
    addresses = frozenset(p["status"]["podIP"] for p in started)
    before = View.of(kubectl).pods

    def down() -> View | None:
        view = View.of(kubectl)
        silent = view.node_ready == "Unknown" and view.pod_readiness == {"False"}
        out = not view.ready_addresses and view.not_ready_addresses == addresses
        return view if silent and out and not any(view.slice_ready.values()) else None

    unknown = poll(down, within=3 * HEARTBEAT_SECONDS)
    assert unknown, f"the node never went Unknown with its pods out: {View.of(kubectl).describe()}"

    def back() -> View | None:
        view = View.of(kubectl)
        ready = view.node_ready == "True" and view.pod_readiness == {"True"}
        listed = view.ready_addresses == addresses and not view.not_ready_addresses
        in_slices = view.slice_ready == dict.fromkeys(addresses, True)
        return view if ready and listed and in_slices else None

    recovered = poll(back, within=HEARTBEAT_SECONDS + 5)
    assert recovered, f"the pods stayed out after the node came back: {View.of(kubectl).describe()}"
    # the same pods and containers as before the node went silent: nothing evicted, nothing restarted
    assert {name: (uid, cid, restarts) for name, (_, uid, cid, restarts) in recovered.pods.items()} == {
        name: (uid, cid, 0) for name, (_, uid, cid, _) in before.items()
    }
