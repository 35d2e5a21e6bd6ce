"""The disruption controller: keeps each PodDisruptionBudget's status (policy/v1) current, as
kube-controller-manager's does, so that evictions (`sim.k8s.eviction`) can consult it.

For `minAvailable` as a number the expected count is the number of matching pods; for a percentage or
for `maxUnavailable` it is the sum of the replicas of the pods' controllers (a ReplicaSet's Deployment
when it has one, a ReplicaSet, a StatefulSet), and the number of matching pods for pods without a known
controller. Percentages round up. A pod is healthy when Ready and not being deleted; pods an eviction
recorded in `status.disruptedPods` count as gone until they are (or for `DISRUPTED_POD_SECONDS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sim.controllers.base import Controller
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.eviction import pod_ready
from sim.k8s.selectors import LabelSelector
from sim.k8s.store import Obj, Store, now

PODS = resources.by_key("pods")
PDBS = resources.by_key("poddisruptionbudgets.policy")
DEPLOYMENTS = resources.by_key("deployments.apps")
REPLICASETS = resources.by_key("replicasets.apps")
STATEFULSETS = resources.by_key("statefulsets.apps")
MANAGER = "disruption-controller"
#: How long an evicted pod that is still there counts as disrupted (upstream's DeletionTimeout).
DISRUPTED_POD_SECONDS = 120.0


def scaled(value: int | str, total: int) -> int:
    """An IntOrString against `total`: a number as is, a percentage rounded up."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


class DisruptionController(Controller):
    """Writes every PodDisruptionBudget's status whenever a budget, a pod or a workload changes."""

    name = MANAGER
    watches = frozenset({PDBS.key, PODS.key, DEPLOYMENTS.key, REPLICASETS.key, STATEFULSETS.key})
    period = 10.0  # to expire disrupted pods that never went

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(store)
        self.clock = clock

    def reconcile(self) -> None:
        for pdb in list(self.store.iter_objects(PDBS)):
            meta = pdb["metadata"]
            status = self.status_of(pdb)
            if status == (pdb.get("status") or {}):
                continue
            try:
                current = self.store.get(PDBS, meta["namespace"], meta["name"])
                current["status"] = status
                self.store.update(
                    PDBS, meta["namespace"], meta["name"], current, subresource="status", manager=MANAGER
                )
            except ApiError:  # changed or gone meanwhile: the next pass sees it
                continue

    def status_of(self, pdb: Mapping[str, Any]) -> Obj:
        """The status `pdb` should have now."""
        meta, spec = pdb["metadata"], pdb.get("spec") or {}
        old = pdb.get("status") or {}
        selector = spec.get("selector")
        pods = [
            p
            for p in self.store.iter_objects(PODS, meta["namespace"])
            if selector and LabelSelector.from_dict(selector).matches(p)
        ]
        disrupted = self._still_disrupted(old.get("disruptedPods") or {}, pods)
        expected, desired = self._expected(spec, pods)
        healthy = sum(
            1
            for p in pods
            if pod_ready(p)
            and not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["name"] not in disrupted
        )
        allowed = max(0, healthy - desired) if expected > 0 else 0
        status: Obj = {
            "observedGeneration": int(meta.get("generation") or 1),
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": allowed,
            "expectedPods": expected,
            "conditions": [self._condition(old, allowed > 0, int(meta.get("generation") or 1))],
        }
        if disrupted:
            status["disruptedPods"] = disrupted
        return status

    def _still_disrupted(self, recorded: Mapping[str, str], pods: list[Obj]) -> dict[str, str]:
        present = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
        moment = self.clock()
        return {
            name: stamp
            for name, stamp in recorded.items()
            if name in present and (moment - _parse_time(stamp)).total_seconds() < DISRUPTED_POD_SECONDS
        }

    def _expected(self, spec: Mapping[str, Any], pods: list[Obj]) -> tuple[int, int]:
        """(expected pods, desired healthy pods) for the budget's spec."""
        if spec.get("maxUnavailable") is not None:
            expected = self._controller_replicas(pods)
            return expected, max(0, expected - scaled(spec["maxUnavailable"], expected))
        minimum = spec.get("minAvailable")
        if minimum is None:
            return 0, 0
        if isinstance(minimum, int):
            return len(pods), minimum
        expected = self._controller_replicas(pods)
        return expected, scaled(minimum, expected)

    def _controller_replicas(self, pods: list[Obj]) -> int:
        """The replicas the pods' controllers want; a pod without a known controller counts as one."""
        controllers: dict[str, int] = {}
        unowned = 0
        for pod in pods:
            found = self._controller_of(pod)
            if found is None:
                unowned += 1
            else:
                controllers[found[0]] = found[1]
        return sum(controllers.values()) + unowned

    def _controller_of(self, pod: Obj) -> tuple[str, int] | None:
        namespace = pod["metadata"]["namespace"]
        owner = _controller_ref(pod)
        if owner is None:
            return None
        kinds = {"ReplicaSet": REPLICASETS, "StatefulSet": STATEFULSETS, "Deployment": DEPLOYMENTS}
        rt = kinds.get(owner.get("kind", ""))
        if rt is None:
            return None
        try:
            obj = self.store.get(rt, namespace, owner["name"])
        except ApiError:
            return None
        if rt is REPLICASETS:
            parent = _controller_ref(obj)
            if parent is not None and parent.get("kind") == "Deployment":
                try:
                    obj = self.store.get(DEPLOYMENTS, namespace, parent["name"])
                except ApiError:
                    return None
        return obj["metadata"]["uid"], int((obj.get("spec") or {}).get("replicas", 1))

    @staticmethod
    def _condition(old: Mapping[str, Any], allowed: bool, generation: int) -> Obj:
        status, reason = ("True", "SufficientPods") if allowed else ("False", "InsufficientPods")
        previous: Mapping[str, Any] = next(
            (c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {}
        )
        stamp = previous.get("lastTransitionTime") if previous.get("status") == status else None
        return {
            "type": "DisruptionAllowed",
            "status": status,
            "reason": reason,
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": stamp or now(),
        }


def _controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)
