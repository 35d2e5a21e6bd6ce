"""The eviction rule behind `POST pods/NAME/eviction` (policy/v1 `Eviction`): delete a pod only when every
PodDisruptionBudget that selects it allows one more disruption, as the API server's eviction REST does.

The budget's `status.disruptionsAllowed` is decremented, and the pod recorded in `status.disruptedPods`,
in the same synchronous step as the delete, so two evictions in quick succession cannot both spend the
last allowed disruption (the disruption controller keeps counting a recorded pod as gone until it is).
A refusal is upstream's 429 with a `DisruptionBudget` cause. Pods that already terminated, or are being
deleted, are evicted without asking a budget; a pod that is not Ready may go while its budget is healthy
(`unhealthyPodEvictionPolicy: IfHealthyBudget`, the default) or always (`AlwaysAllow`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.k8s import errors, resources
from sim.k8s.errors import ApiError
from sim.k8s.selectors import LabelSelector
from sim.k8s.store import Obj, Store, now

PODS = resources.by_key("pods")
PDBS = resources.by_key("poddisruptionbudgets.policy")
MANAGER = "eviction"
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def budgets_for(store: Store, pod: Mapping[str, Any]) -> list[Obj]:
    """The PodDisruptionBudgets in the pod's namespace whose (non-empty) selector matches it."""
    namespace = pod["metadata"].get("namespace", "default")
    out = []
    for pdb in store.iter_objects(PDBS, namespace):
        selector = (pdb.get("spec") or {}).get("selector")
        if selector and LabelSelector.from_dict(selector).matches(dict(pod)):
            out.append(pdb)
    return out


def _too_many(message: str) -> ApiError:
    return ApiError(
        429, "TooManyRequests", REFUSED, causes=[{"reason": "DisruptionBudget", "message": message}]
    )


def _check(pdb: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Raise the 429 when `pdb` forbids evicting `pod`; True when the eviction spends a disruption."""
    name = pdb["metadata"]["name"]
    status = pdb.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 1):
        raise _too_many(f"The disruption budget {name} is still being processed by the server.")
    healthy, desired = int(status.get("currentHealthy") or 0), int(status.get("desiredHealthy") or 0)
    if not pod_ready(pod):
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
        if policy == "AlwaysAllow" or healthy >= desired:
            return False
    if int(status.get("disruptionsAllowed") or 0) <= 0:
        raise _too_many(
            f"The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
        )
    return True


def evict(store: Store, namespace: str, name: str, eviction: Mapping[str, Any]) -> Obj:
    """Evict pod `namespace/name` as `eviction` (its `deleteOptions`) asks; the Status to answer with."""
    if eviction.get("kind") not in (None, "Eviction"):
        raise errors.bad_request(f"the kind {eviction.get('kind')!r} is not an Eviction")
    pod = store.get(PODS, namespace, name)
    options = eviction.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise errors.bad_request("deleteOptions must be an object")
    dry_run = "All" in (options.get("dryRun") or [])
    terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    if not terminal and not pod["metadata"].get("deletionTimestamp"):
        budgets = budgets_for(store, pod)
        if len(budgets) > 1:
            raise ApiError(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                "does not support.",
            )
        if budgets and _check(budgets[0], pod) and not dry_run:
            _spend(store, budgets[0], name)
    grace = options.get("gracePeriodSeconds")
    store.delete(
        PODS,
        namespace,
        name,
        propagation=options.get("propagationPolicy"),
        preconditions=options.get("preconditions"),
        dry_run=dry_run,
        grace_period=int(grace) if isinstance(grace, int) else None,
    )
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _spend(store: Store, pdb: Obj, pod_name: str) -> None:
    meta = pdb["metadata"]
    current = store.get(PDBS, meta["namespace"], meta["name"])
    status = current.setdefault("status", {})
    status["disruptionsAllowed"] = int(status.get("disruptionsAllowed") or 0) - 1
    status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: now()}
    store.update(PDBS, meta["namespace"], meta["name"], current, subresource="status", manager=MANAGER)
