"""A minimal scheduler, in-process with the store: binds each pod without `spec.nodeName` to a Ready node
whose allocatable (cpu and memory from the containers' requests, and the pod count) still fits it.

A pod that fits nowhere stays Pending with `PodScheduled=False` (reason `Unschedulable`) and a
`FailedScheduling` Event saying why, as kube-scheduler reports it (`0/1 nodes are available: 1
Insufficient memory.`). Pods are retried whenever a pod or a node changes. Nodes that are cordoned
(`spec.unschedulable`) or carry a NoSchedule/NoExecute taint the pod does not tolerate get no pods.

The pod's `topologySpreadConstraints` count the pods their selector matches in each domain (the value of
the node label `topologyKey`) of the nodes the pod could go to: a `DoNotSchedule` one leaves out the nodes
where the pod would make the skew (its domain's count, plus one, less the smallest) exceed `maxSkew`; a
`ScheduleAnyway` one prefers the nodes of the least crowded domains, as kube-scheduler's PodTopologySpread
plugin scores them, so the replicas of a workload spread over zones and a lost node or zone takes only
some of them. Among equally spread nodes the least loaded (by requested memory) wins, then the first by
name.

Pending pods are taken highest priority first (`spec.priority`, else the built-in classes
`system-node-critical` and `system-cluster-critical` by `priorityClassName`; other classes count 0). A
pod that fits nowhere preempts, as kube-scheduler does: on the node where the fewest pods of lower
priority (lowest first, then newest) make room, those are deleted gracefully, each with a `Preempted`
Event, and the pod gets `status.nominatedNodeName`; it binds once they are gone. So the cluster
autoscaler's own pod, moved off a drained node onto a full one, still runs to add the node the others
wait for. Not done: affinity, PriorityClass objects, disruption budgets in the choice of victims, the
cluster's default spread constraints.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kube.requests import Resources, allocatable, pod_requests
from sim.controllers.base import Controller
from sim.controllers.nodelifecycle import tolerates
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.events import record_event
from sim.k8s.selectors import LabelSelector
from sim.k8s.store import Event, Obj, Store, now

log = logging.getLogger(__name__)

PODS = resources.by_key("pods")
NODES = resources.by_key("nodes")
SCHEDULER_NAME = "default-scheduler"
#: the priority classes kube-apiserver creates in every cluster
BUILTIN_PRIORITIES = {"system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000}
TERMINAL = ("Succeeded", "Failed")


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    return allocatable((node.get("status") or {}).get("allocatable") or {})


def node_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _selector_matches(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    wanted = (pod.get("spec") or {}).get("nodeSelector") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _untolerated_taint(pod: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The node's first NoSchedule or NoExecute taint that the pod does not tolerate."""
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and tolerates(pod, taint) is None:
            return dict(taint)
    return None


def priority(pod: Mapping[str, Any]) -> int:
    """The pod's scheduling priority: `spec.priority`, else its built-in class's, else 0."""
    spec = pod.get("spec") or {}
    if isinstance(spec.get("priority"), int):
        return int(spec["priority"])
    return BUILTIN_PRIORITIES.get(spec.get("priorityClassName") or "", 0)


def _shortfalls(want: Resources, have: Resources, taken: Resources) -> list[str]:
    """What a node with `have` allocatable, `taken` already, lacks for `want` (kube-scheduler's words)."""
    short = []
    if taken.pods + want.pods > have.pods:
        short.append("Too many pods")
    if want.cpu and taken.cpu + want.cpu > have.cpu:
        short.append("Insufficient cpu")
    if want.memory and taken.memory + want.memory > have.memory:
        short.append("Insufficient memory")
    return short


def preemption(pod: Mapping[str, Any], nodes: list[Obj], pods: list[Obj]) -> tuple[str, list[Obj]] | None:
    """The node where removing running pods of lower priority than `pod` makes room for it, and those
    victims: the fewest, taken lowest priority first, then newest; None when no node can be so freed.
    Pods already being deleted free their room without being victims."""
    mine, want = priority(pod), pod_requests(pod)
    best: tuple[str, list[Obj]] | None = None
    for node in nodes:
        if _ineligible(pod, node) is not None:
            continue
        name = node["metadata"]["name"]
        staying = [
            p
            for p in pods
            if (p.get("spec") or {}).get("nodeName") == name
            and _occupies(p)
            and not p["metadata"].get("deletionTimestamp")
        ]
        # lowest priority first, the newest first within a priority
        newest_first = sorted(
            (p for p in staying if priority(p) < mine),
            key=lambda p: p["metadata"].get("creationTimestamp", ""),
            reverse=True,
        )
        candidates = sorted(newest_first, key=priority)
        have, taken = node_allocatable(node), Resources()
        for other in staying:
            taken += pod_requests(other)
        victims: list[Obj] = []
        for victim in candidates:
            if not _shortfalls(want, have, taken):
                break
            victims.append(victim)
            taken -= pod_requests(victim)
        if not _shortfalls(want, have, taken) and (best is None or len(victims) < len(best[1])):
            best = (name, victims)
    return best


def _occupies(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in TERMINAL


def _ineligible(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why `node` could not take `pod` whatever its room (kube-scheduler's words), or None."""
    taint = _untolerated_taint(pod, node)
    if not node_ready(node):
        return "node(s) were not ready"
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    if not _selector_matches(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def _domain_counts(
    constraint: Mapping[str, Any], pod: Mapping[str, Any], nodes: list[Obj], pods: list[Obj]
) -> dict[str, int]:
    """The pods `constraint`'s selector matches (in the pod's namespace, still running or to run) in each
    domain of `nodes` (nodes without the topology label form none)."""
    key = constraint.get("topologyKey", "")
    domain_of = {
        n["metadata"]["name"]: labels[key]
        for n in nodes
        if key in (labels := n["metadata"].get("labels") or {})
    }
    counts = dict.fromkeys(domain_of.values(), 0)
    selector = LabelSelector.from_dict(constraint.get("labelSelector") or {})
    namespace = pod["metadata"].get("namespace")
    for other in pods:
        meta = other["metadata"]
        node = (other.get("spec") or {}).get("nodeName")
        if (
            node in domain_of
            and meta.get("namespace") == namespace
            and not meta.get("deletionTimestamp")
            and _occupies(other)
            and selector.matches(other)
        ):
            counts[domain_of[node]] += 1
    return counts


def _spread(
    pod: Mapping[str, Any], candidates: list[Obj], pods: list[Obj]
) -> tuple[set[str], dict[str, int]]:
    """The candidate nodes a `DoNotSchedule` constraint rules out, and each candidate's crowding (the
    matching pods already in its domains, summed over the `ScheduleAnyway` constraints: lower is better)."""
    excluded: set[str] = set()
    crowding = {n["metadata"]["name"]: 0 for n in candidates}
    for constraint in (pod.get("spec") or {}).get("topologySpreadConstraints") or []:
        key = constraint.get("topologyKey", "")
        counts = _domain_counts(constraint, pod, candidates, pods)
        smallest = min(counts.values(), default=0)
        for node in candidates:
            name = node["metadata"]["name"]
            domain = (node["metadata"].get("labels") or {}).get(key)
            if constraint.get("whenUnsatisfiable") == "DoNotSchedule":
                if domain is None or counts[domain] + 1 - smallest > int(constraint.get("maxSkew", 1)):
                    excluded.add(name)
            else:  # a node outside every domain comes last, as kube-scheduler scores it
                crowding[name] += len(pods) + 1 if domain is None else counts[domain]
    return excluded, crowding


def place(pod: Mapping[str, Any], nodes: list[Obj], pods: list[Obj]) -> tuple[str | None, str]:
    """The node `pod` goes to, or None and why not (kube-scheduler's FailedScheduling message)."""
    used: dict[str, Resources] = {n["metadata"]["name"]: Resources() for n in nodes}
    for other in pods:
        node_name = (other.get("spec") or {}).get("nodeName")
        if node_name in used and _occupies(other):
            used[node_name] += pod_requests(other)
    want = pod_requests(pod)
    reasons: dict[str, int] = {}
    fitting: list[Obj] = []
    eligible: list[Obj] = []
    for node in nodes:
        name = node["metadata"]["name"]
        ineligible = _ineligible(pod, node)
        why = [ineligible] if ineligible else []
        if ineligible is None:
            eligible.append(node)
            why += _shortfalls(want, node_allocatable(node), used[name])
        if why:
            for reason in why:
                reasons[reason] = reasons.get(reason, 0) + 1
        else:
            fitting.append(node)
    excluded, crowding = _spread(pod, eligible, pods)
    fitting_names = [n["metadata"]["name"] for n in fitting]
    if spread_out := sum(1 for name in fitting_names if name in excluded):
        reasons["node(s) didn't match pod topology spread constraints"] = spread_out
    ranked = [(crowding[name], used[name].memory, name) for name in fitting_names if name not in excluded]
    if ranked:
        return min(ranked)[2], ""
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    message = f"0/{len(nodes)} nodes are available"
    return None, f"{message}: {detail}." if detail else f"{message}."


class Scheduler(Controller):
    """Binds pending pods whenever pods or nodes change."""

    name = SCHEDULER_NAME
    watches = frozenset({PODS.key, NODES.key})

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._reported: dict[str, str] = {}  # pod uid -> the last FailedScheduling message

    def wants(self, event: Event) -> bool:
        if event.key == NODES.key:
            return True
        if event.key != PODS.key:
            return False
        spec = event.obj.get("spec") or {}
        # a new pending pod, or a pod leaving (which may free room for a pending one)
        return not spec.get("nodeName") or event.type == "DELETED" or not _occupies(event.obj)

    def reconcile(self) -> None:
        """One pass: bind every pending pod that fits, highest priority first, then in creation order;
        a pod that fits nowhere may preempt pods of lower priority."""
        pods = [p for p in self.store.iter_objects(PODS)]
        pending = [
            p
            for p in pods
            if not (p.get("spec") or {}).get("nodeName")
            and not p["metadata"].get("deletionTimestamp")
            and (p.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and _occupies(p)
        ]
        pending.sort(
            key=lambda p: (-priority(p), p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
        )
        live = {p["metadata"]["uid"] for p in pods}
        self._reported = {uid: m for uid, m in self._reported.items() if uid in live}
        for pod in pending:
            nodes = list(self.store.iter_objects(NODES))
            pods = list(self.store.iter_objects(PODS))
            node, why = place(pod, nodes, pods)
            try:
                if node is not None:
                    self._bind(pod, node)
                else:
                    self._unschedulable(pod, why)
                    found = preemption(pod, nodes, pods)
                    if found is not None and found[1]:  # room that only victims give: take it
                        self._preempt(pod, *found)
            except ApiError as err:  # the pod changed or went meanwhile: the next pass sees it
                log.debug("scheduling %s: %s", pod["metadata"]["name"], err)

    def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        bound = self.store.get(PODS, ns, name)
        bound["spec"]["nodeName"] = node
        bound = self.store.update(PODS, ns, name, bound, manager=SCHEDULER_NAME)
        bound["status"] = {
            **(bound.get("status") or {}),
            "conditions": _with_condition(bound, {"type": "PodScheduled", "status": "True"}),
        }
        self.store.update(PODS, ns, name, bound, subresource="status", manager=SCHEDULER_NAME)
        self._reported.pop(meta["uid"], None)
        record_event(
            self.store,
            bound,
            "Normal",
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node}",
            SCHEDULER_NAME,
        )

    def _preempt(self, pod: Obj, node: str, victims: list[Obj]) -> None:
        """Delete `victims` (gracefully) to make room for `pod` on `node`, and nominate the node."""
        meta = pod["metadata"]
        for victim in victims:
            vmeta = victim["metadata"]
            self.store.delete(PODS, vmeta["namespace"], vmeta["name"], preconditions={"uid": vmeta["uid"]})
            message = f"Preempted by pod {meta['uid']} on node {node}"
            record_event(self.store, victim, "Normal", "Preempted", message, SCHEDULER_NAME)
            log.info("preempted %s/%s on %s for %s", vmeta["namespace"], vmeta["name"], node, meta["name"])
        current = self.store.get(PODS, meta["namespace"], meta["name"])
        if (current.get("status") or {}).get("nominatedNodeName") != node:
            current["status"] = {**(current.get("status") or {}), "nominatedNodeName": node}
            self.store.update(
                PODS, meta["namespace"], meta["name"], current, subresource="status", manager=SCHEDULER_NAME
            )

    def _unschedulable(self, pod: Obj, why: str) -> None:
        meta = pod["metadata"]
        if self._reported.get(meta["uid"]) == why:
            return
        self._reported[meta["uid"]] = why
        current = self.store.get(PODS, meta["namespace"], meta["name"])
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why}
        current["status"] = {
            **(current.get("status") or {}),
            "phase": "Pending",
            "conditions": _with_condition(current, condition),
        }
        self.store.update(
            PODS, meta["namespace"], meta["name"], current, subresource="status", manager=SCHEDULER_NAME
        )
        record_event(self.store, current, "Warning", "FailedScheduling", why, SCHEDULER_NAME)


def _with_condition(pod: Mapping[str, Any], condition: dict[str, str]) -> list[dict[str, Any]]:
    """The pod's conditions with `condition` set (its transition time kept while the status holds)."""
    old = [dict(c) for c in (pod.get("status") or {}).get("conditions") or []]
    stamp = now()
    for existing in old:
        if existing.get("type") == condition["type"]:
            if existing.get("status") != condition["status"]:
                existing["lastTransitionTime"] = stamp
            existing.update(condition)
            existing.setdefault("lastProbeTime", None)
            return old
    return [*old, {**condition, "lastProbeTime": None, "lastTransitionTime": stamp}]
