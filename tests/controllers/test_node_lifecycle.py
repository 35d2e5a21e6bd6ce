"""The node lifecycle controller in-process with a `Store` and a fake clock, `reconcile()` driven by hand;
the scheduler's `place` for where new pods may go. Proves a node that stops heartbeating turns Unknown
and is tainted unreachable, its pods are marked not Ready and deleted after the eviction timeout (or their
own toleration), it gets no new pods, and it turns Ready and loses the taint when it heartbeats again;
a cordoned node gets no new pods either."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sim.controllers.nodelifecycle import NodeLifecycleController
from sim.controllers.scheduler import place
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.store import Store

pytestmark = pytest.mark.timeout(60)

NODES = resources.by_key("nodes")
PODS = resources.by_key("pods")
LEASES = resources.by_key("leases.coordination.k8s.io")
EVENTS = resources.by_key("events")
NS = "default"
GRACE = 40.0
EVICTION = 300.0
START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Rig:
    def __init__(self) -> None:
        self.store = Store()
        self.now = START
        self.controller = NodeLifecycleController(
            self.store, grace_seconds=GRACE, eviction_seconds=EVICTION, clock=lambda: self.now
        )
        for name in ("node-1", "node-2"):
            self.store.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            self.heartbeat(name)

    def heartbeat(self, name: str) -> None:
        """What the kubelet posts: Ready with a fresh heartbeat, and its Lease renewed."""
        node = self.store.get(NODES, None, name)
        at = stamp(self.now)
        conditions = [
            {
                "type": kind,
                "status": value,
                "reason": "Kubelet",
                "lastHeartbeatTime": at,
                "lastTransitionTime": at,
            }
            for kind, value in (("MemoryPressure", "False"), ("Ready", "True"))
        ]
        node["status"] = {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "17"},
            "conditions": conditions,
        }
        self.store.update(NODES, None, name, node, subresource="status")
        spec = {"holderIdentity": name, "renewTime": self.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        try:
            lease = self.store.get(LEASES, "kube-node-lease", name)
        except ApiError:
            self.store.create(
                LEASES,
                {"metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec},
                "kube-node-lease",
            )
        else:
            lease["spec"] = spec
            self.store.update(LEASES, "kube-node-lease", name, lease)

    def pod(self, name: str, node: str, tolerations: list[dict[str, Any]] | None = None) -> None:
        spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "app", "image": "web"}]}
        if tolerations:
            spec["tolerations"] = tolerations
        self.store.create(
            PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}, NS
        )
        pod = self.store.get(PODS, NS, name)
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        self.store.update(PODS, NS, name, pod, subresource="status")

    def at(self, seconds: float) -> None:
        """The controller's pass `seconds` after the start (node-2 keeps heartbeating)."""
        self.now = START + timedelta(seconds=seconds)
        self.heartbeat("node-2")
        self.controller.reconcile()

    def node(self, name: str = "node-1") -> dict[str, Any]:
        return self.store.get(NODES, None, name)

    def pods(self) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.store.iter_objects(PODS, NS))

    def where_new_pods_go(self) -> tuple[str | None, str]:
        new = {"metadata": {"name": "new"}, "spec": {"containers": [{"name": "app"}]}}
        return place(new, list(self.store.iter_objects(NODES)), list(self.store.iter_objects(PODS)))


def conditions(node: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
        for c in node["status"]["conditions"]
    }


def taints(node: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}


def test_a_silent_node_turns_unknown_is_tainted_and_its_pods_are_evicted_after_the_timeout() -> None:
    rig = Rig()
    rig.pod("plain", "node-1")
    rig.pod("patient", "node-1", [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}])
    rig.pod(
        "hasty",
        "node-1",
        [
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 10,
            }
        ],
    )
    rig.pod("elsewhere", "node-2")

    rig.at(GRACE - 5)
    assert conditions(rig.node())["Ready"][0] == "True"
    assert not taints(rig.node())

    rig.at(GRACE + 1)
    node = rig.node()
    assert conditions(node) == {
        "MemoryPressure": ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
        "Ready": ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
    }
    assert taints(node) == {
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoSchedule"),
    }
    assert conditions(rig.node("node-2"))["Ready"][0] == "True"
    plain = rig.store.get(PODS, NS, "plain")
    assert plain["status"]["conditions"] == [
        {"type": "Ready", "status": "False", "lastTransitionTime": stamp(rig.now)}
    ]
    assert rig.where_new_pods_go() == ("node-2", "")

    rig.at(GRACE + 11)
    assert rig.pods() == ["elsewhere", "patient", "plain"]  # its own toleration ran out first
    rig.at(GRACE + EVICTION - 1)
    assert rig.pods() == ["elsewhere", "patient", "plain"]
    rig.at(GRACE + EVICTION + 1)
    assert rig.pods() == ["elsewhere", "patient"]  # tolerating without seconds: stays
    reasons = {(e["reason"], e["involvedObject"]["name"]) for e in rig.store.iter_objects(EVENTS, NS)}
    assert {
        ("NodeNotReady", "node-1"),
        ("TaintManagerEviction", "plain"),
        ("TaintManagerEviction", "hasty"),
    } <= reasons


def test_a_node_that_heartbeats_again_turns_ready_and_loses_the_taint() -> None:
    rig = Rig()
    rig.at(GRACE + 1)
    assert rig.where_new_pods_go() == ("node-2", "")
    rig.heartbeat("node-1")
    rig.at(GRACE + 2)
    node = rig.node()
    assert conditions(node)["Ready"][0] == "True"
    assert not taints(node)
    rig.at(GRACE + 10)
    assert conditions(rig.node())["Ready"][0] == "True"  # the new heartbeat counts from now


def test_the_lease_alone_keeps_a_node_alive() -> None:
    rig = Rig()
    for second in (30, 60, 90):
        rig.now = START + timedelta(seconds=second)
        spec = {"holderIdentity": "node-1", "renewTime": rig.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        lease = rig.store.get(LEASES, "kube-node-lease", "node-1")
        lease["spec"] = spec
        rig.store.update(LEASES, "kube-node-lease", "node-1", lease)
        rig.at(second)
    assert conditions(rig.node())["Ready"][0] == "True"


def test_cordoned_and_tainted_nodes_get_no_new_pods() -> None:
    rig = Rig()
    node = rig.node("node-2")
    node["spec"] = {"unschedulable": True}
    rig.store.update(NODES, None, "node-2", node)
    node = rig.node("node-1")
    node["spec"] = {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}
    rig.store.update(NODES, None, "node-1", node)
    assert rig.where_new_pods_go() == (
        None,
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, "
        "1 node(s) were unschedulable.",
    )
