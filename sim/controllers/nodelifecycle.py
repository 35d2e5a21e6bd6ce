"""The node lifecycle controller: notices nodes that stopped heartbeating, taints them, and evicts their
pods after a timeout, as kube-controller-manager's node lifecycle and taint-eviction controllers do.

A node's last heartbeat is the later of its Lease's `renewTime` and its Ready condition's
`lastHeartbeatTime`. Past `grace_seconds` (upstream's node-monitor-grace-period, 40 s) every condition
the kubelet posts turns `Unknown` (reason `NodeStatusUnknown`), the node gets the
`node.kubernetes.io/unreachable` taints (NoSchedule and NoExecute) and its pods are marked not Ready.
A node whose kubelet reports Ready=False gets `node.kubernetes.io/not-ready` instead. A pod on a
NoExecute-tainted node is deleted once its toleration of the taint runs out: its `tolerationSeconds`,
or `eviction_seconds` (upstream's default toleration of 300 s) when it has no toleration; a toleration
without seconds keeps it. When the node heartbeats Ready again, the taints go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sim.controllers.base import Controller
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.events import record_event
from sim.k8s.store import Obj, Store

log = logging.getLogger(__name__)

NODES = resources.by_key("nodes")
PODS = resources.by_key("pods")
LEASES = resources.by_key("leases.coordination.k8s.io")
LEASE_NAMESPACE = "kube-node-lease"
MANAGER = "node-controller"
GRACE_SECONDS = 40.0
EVICTION_SECONDS = 300.0
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as the API writes it (seconds or microseconds, `Z`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def tolerates(pod: Mapping[str, Any], taint: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's toleration that matches `taint`, if any."""
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key, operator = toleration.get("key"), toleration.get("operator", "Equal")
        if not key and operator == "Exists":
            return dict(toleration)
        if key != taint.get("key"):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return dict(toleration)
    return None


class NodeLifecycleController(Controller):
    """Checks every node's heartbeat on a period (and on node changes)."""

    name = MANAGER
    watches = frozenset({NODES.key, LEASES.key})
    period = 1.0

    def __init__(
        self,
        store: Store,
        grace_seconds: float = GRACE_SECONDS,
        eviction_seconds: float = EVICTION_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(store)
        self.grace_seconds = grace_seconds
        self.eviction_seconds = eviction_seconds
        self.clock = clock

    def reconcile(self) -> None:
        for node in list(self.store.iter_objects(NODES)):
            name = node["metadata"]["name"]
            try:
                self._check(name)
            except ApiError as err:  # changed or gone meanwhile: the next pass sees it
                log.debug("node %s: %s", name, err)

    def last_heartbeat(self, node: Mapping[str, Any]) -> datetime | None:
        times = []
        beat = _condition(node, "Ready").get("lastHeartbeatTime")
        if beat:
            times.append(parse_time(beat))
        try:
            lease = self.store.get(LEASES, LEASE_NAMESPACE, node["metadata"]["name"])
        except ApiError:
            lease = {}
        renewed = (lease.get("spec") or {}).get("renewTime")
        if renewed:
            times.append(parse_time(renewed))
        return max(times) if times else None

    def _check(self, name: str) -> None:
        node = self.store.get(NODES, None, name)
        moment = self.clock()
        beat = self.last_heartbeat(node)
        if beat is None:
            return  # not registered yet
        ready = _condition(node, "Ready").get("status")
        if (moment - beat).total_seconds() > self.grace_seconds and ready != "Unknown":
            node = self._mark_unknown(node, moment)
            ready = "Unknown"
        wanted = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(str(ready))
        node = self._taint(node, wanted, moment)
        self._evict_pods(node, moment)

    def _mark_unknown(self, node: Obj, moment: datetime) -> Obj:
        name = node["metadata"]["name"]
        stamp = _stamp(moment)
        conditions = []
        for condition in (node.get("status") or {}).get("conditions") or []:
            if condition.get("type") in KUBELET_CONDITIONS:
                condition = {
                    **condition,
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": UNKNOWN_MESSAGE,
                    "lastTransitionTime": stamp,
                }
            conditions.append(condition)
        node.setdefault("status", {})["conditions"] = conditions
        node = self.store.update(NODES, None, name, node, subresource="status", manager=MANAGER)
        record_event(
            self.store, node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady", MANAGER
        )
        for pod in self._pods_on(name):
            self._mark_pod_not_ready(pod, stamp)
        return node

    def _mark_pod_not_ready(self, pod: Obj, stamp: str) -> None:
        meta = pod["metadata"]
        current = self.store.get(PODS, meta["namespace"], meta["name"])
        conditions = []
        for condition in (current.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") != "False":
                condition = {**condition, "status": "False", "lastTransitionTime": stamp}
            conditions.append(condition)
        current.setdefault("status", {})["conditions"] = conditions
        self.store.update(
            PODS, meta["namespace"], meta["name"], current, subresource="status", manager=MANAGER
        )
        record_event(self.store, current, "Warning", "NodeNotReady", "Node is not ready", MANAGER)

    def _taint(self, node: Obj, wanted: str | None, moment: datetime) -> Obj:
        """The node with exactly the lifecycle taints for `wanted` (none when it is Ready)."""
        taints = list((node.get("spec") or {}).get("taints") or [])
        kept = [t for t in taints if t.get("key") not in (UNREACHABLE, NOT_READY) or t.get("key") == wanted]
        have = {(t.get("key"), t.get("effect")) for t in kept}
        if wanted is not None:
            for effect in ("NoSchedule", "NoExecute"):
                if (wanted, effect) not in have:
                    kept.append({"key": wanted, "effect": effect, "timeAdded": _stamp(moment)})
        if kept == taints:
            return node
        node.setdefault("spec", {})["taints"] = kept
        if not kept:
            del node["spec"]["taints"]
        return self.store.update(NODES, None, node["metadata"]["name"], node, manager=MANAGER)

    def _pods_on(self, node_name: str) -> list[Obj]:
        return [
            p for p in self.store.iter_objects(PODS) if (p.get("spec") or {}).get("nodeName") == node_name
        ]

    def _evict_pods(self, node: Obj, moment: datetime) -> None:
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if not taints:
            return
        for pod in self._pods_on(node["metadata"]["name"]):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if any(self._expired(pod, taint, moment) for taint in taints):
                meta = pod["metadata"]
                record_event(
                    self.store,
                    pod,
                    "Normal",
                    "TaintManagerEviction",
                    f"Marking for deletion Pod {meta['namespace']}/{meta['name']}",
                    MANAGER,
                )
                try:
                    self.store.delete(
                        PODS, meta["namespace"], meta["name"], preconditions={"uid": meta["uid"]}
                    )
                except ApiError as err:
                    log.debug("evicting %s: %s", meta["name"], err)

    def _expired(self, pod: Mapping[str, Any], taint: Mapping[str, Any], moment: datetime) -> bool:
        toleration = tolerates(pod, taint)
        if toleration is not None and toleration.get("tolerationSeconds") is None:
            return False
        seconds = self.eviction_seconds if toleration is None else float(toleration["tolerationSeconds"])
        added = parse_time(taint["timeAdded"]) if taint.get("timeAdded") else moment
        return (moment - added).total_seconds() >= seconds
