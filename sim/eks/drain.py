"""Taking a node out of a cluster, as an EKS managed node group (or the cluster autoscaler) scales in: all
through the Kubernetes API, the node's kubelet taking part only as any kubelet does.

`cordon` marks the node unschedulable (`kubectl cordon`), so nothing new lands on it. `remove_node` then
drains it: each of its pods is evicted (the eviction API: a PodDisruptionBudget may refuse, 429); an
evicted pod stops with its grace period (its kubelet runs the stop sequence and confirms the delete) and
its controller makes a new one elsewhere. A budget is waited for `budget_wait` seconds, then the pod is
deleted anyway (grace 0); pods still stopping get `STOP_SECONDS` more. Then the machine is terminated
(`terminate`: whatever still runs there dies with it), and what the node leaves in the API is deleted, as
the cloud node lifecycle controller and the pod garbage collector do upstream: pods still bound to it,
its Lease and its Node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.eviction import evict
from sim.k8s.store import Obj, Store

log = logging.getLogger(__name__)

PODS = resources.by_key("pods")
NODES = resources.by_key("nodes")
LEASES = resources.by_key("leases.coordination.k8s.io")
LEASE_NAMESPACE = "kube-node-lease"
MANAGER = "eks-node-group"
#: how long draining a node waits for disruption budgets before it deletes the pods anyway
DRAIN_SECONDS = 60.0
#: how long past that the pods already stopping get before their machine is terminated under them
STOP_SECONDS = 3.0
POLL_SECONDS = 0.1

#: ends a node's machine by name (the node agent's `stop_node`)
Terminate = Callable[[str], Awaitable[None]]


def cordon(store: Store, node: str) -> None:
    """Mark `node` unschedulable, as `kubectl cordon` does (a node that is gone is left alone)."""
    try:
        obj = store.get(NODES, None, node)
    except ApiError:
        return
    if not (obj.get("spec") or {}).get("unschedulable"):
        obj.setdefault("spec", {})["unschedulable"] = True
        store.update(NODES, None, node, obj, manager=MANAGER)


async def drain(store: Store, node: str, budget_wait: float = DRAIN_SECONDS) -> None:
    """Cordon `node` and evict its pods until none is left, or until `budget_wait` + `STOP_SECONDS`
    have passed (a pod a budget still protects after `budget_wait` is deleted with grace 0)."""
    cordon(store, node)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_wait
    while pods := pods_on(store, node):
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            try:
                evict(store, meta["namespace"], meta["name"], {})
            except ApiError as err:
                if err.code != 429 or loop.time() > deadline:
                    _delete_now(store, pod)
        if loop.time() > deadline + STOP_SECONDS:
            return
        await asyncio.sleep(POLL_SECONDS)


async def remove_node(
    store: Store, node: str, terminate: Terminate, budget_wait: float = DRAIN_SECONDS
) -> None:
    """Drain `node`, terminate its machine, and delete what it leaves: its pods, its Lease, its Node."""
    await drain(store, node, budget_wait)
    await terminate(node)  # before the Node goes: a kubelet still running would register it again
    for pod in pods_on(store, node):
        _delete_now(store, pod)
    for rt, namespace in ((LEASES, LEASE_NAMESPACE), (NODES, None)):
        try:
            store.delete(rt, namespace, node)
        except ApiError as err:
            if err.code != 404:
                log.warning("deleting %s %s: %s", rt.plural, node, err)


def pods_on(store: Store, node: str) -> list[Obj]:
    """The pods bound to `node`."""
    return [p for p in store.iter_objects(PODS) if (p.get("spec") or {}).get("nodeName") == node]


def _delete_now(store: Store, pod: Obj) -> None:
    """Delete `pod` with grace 0 (that very pod: a namesake made meanwhile is left alone)."""
    meta = pod["metadata"]
    try:
        store.delete(
            PODS, meta["namespace"], meta["name"], grace_period=0, preconditions={"uid": meta["uid"]}
        )
    except ApiError as err:
        if err.code != 404:
            log.warning("deleting pod %s/%s: %s", meta["namespace"], meta["name"], err)
