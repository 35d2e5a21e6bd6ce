"""The ReplicaSet controller: keeps `spec.replicas` pods matching each ReplicaSet's selector.

Pods come from the template with a controller owner reference and `generateName: <rs>-`; orphans that
match the selector are adopted, owned pods that stopped matching are released. Surplus pods go in
upstream's order (unscheduled, not Ready, newest first). Pods that finished (Succeeded/Failed) or are
being deleted do not count, so a deleted pod is replaced at once while it still terminates. Status:
replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (Ready for `minReadySeconds`),
observedGeneration. Events `SuccessfulCreate` and `SuccessfulDelete` as upstream. Not done: burst
limits (slow start) and the ReplicaFailure condition.
"""

from __future__ import annotations

import logging
from typing import Any

from sim.controllers.base import Controller
from sim.controllers.workloads import (
    PODS,
    DelayedWake,
    availability_pending,
    controlled_by,
    controller_of,
    deletion_order,
    int_field,
    nonzero,
    owner_reference,
    pod_active,
    pod_available,
    pod_from_template,
    pod_ready,
    selector_of,
)
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.events import record_event
from sim.k8s.store import Event, Obj, Store

log = logging.getLogger(__name__)

REPLICASETS = resources.by_key("replicasets.apps")
MANAGER = "replicaset-controller"


class ReplicaSetController(Controller):
    name = MANAGER
    watches = frozenset({REPLICASETS.key, PODS.key})

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._later = DelayedWake(self.wake)

    def wants(self, event: Event) -> bool:
        if event.key == REPLICASETS.key:
            return True
        if event.key != PODS.key:
            return False
        # a pod change matters when it is (or was) owned by a ReplicaSet, or could be adopted by one
        refs = [controller_of(o) for o in (event.obj, event.old) if o is not None]
        return any(r is None or r.get("kind") == "ReplicaSet" for r in refs)

    def reconcile(self) -> None:
        for rs in list(self.store.iter_objects(REPLICASETS)):
            if rs["metadata"].get("deletionTimestamp"):
                continue
            try:
                self.sync(self.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"]))
            except ApiError as err:  # it changed or went meanwhile: the next pass sees it
                log.debug("replicaset %s: %s", rs["metadata"]["name"], err)

    def sync(self, rs: Obj) -> None:
        """Adopt, release, create or delete pods for one ReplicaSet, then write its status."""
        ns = rs["metadata"]["namespace"]
        pods = self._claim(rs, [p for p in self.store.iter_objects(PODS, ns)])
        active = [p for p in pods if pod_active(p)]
        want = int_field(rs, "replicas", 1)
        if len(active) < want:
            for _ in range(want - len(active)):
                created = self.store.create(
                    PODS,
                    pod_from_template(
                        rs["spec"].get("template") or {}, rs, generate_name=f"{rs['metadata']['name']}-"
                    ),
                    ns,
                    manager=MANAGER,
                )
                active.append(created)
                record_event(
                    self.store,
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created pod: {created['metadata']['name']}",
                    MANAGER,
                )
        elif len(active) > want:
            surplus = deletion_order(active)[: len(active) - want]
            for pod in surplus:
                self.store.delete(PODS, ns, pod["metadata"]["name"])
                record_event(
                    self.store,
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    MANAGER,
                )
            gone = {p["metadata"]["uid"] for p in surplus}
            active = [p for p in active if p["metadata"]["uid"] not in gone]
        self._write_status(rs, active)

    def _claim(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """The pods this ReplicaSet controls after adopting matching orphans and releasing owned pods
        that no longer match (upstream's ClaimPods)."""
        selector = selector_of(rs)
        ns = rs["metadata"]["namespace"]
        mine: list[Obj] = []
        for pod in pods:
            matches = bool(selector) and selector.matches(pod)
            ref = controller_of(pod)
            if ref is not None and not controlled_by(pod, rs):
                continue
            if ref is not None and matches:
                mine.append(pod)
            elif ref is not None:
                released = self.store.get(PODS, ns, pod["metadata"]["name"])
                released["metadata"]["ownerReferences"] = [
                    r
                    for r in released["metadata"].get("ownerReferences") or []
                    if r.get("uid") != rs["metadata"]["uid"]
                ]
                self.store.update(PODS, ns, pod["metadata"]["name"], released, manager=MANAGER)
            elif matches and pod_active(pod):
                adopted = self.store.get(PODS, ns, pod["metadata"]["name"])
                adopted["metadata"]["ownerReferences"] = [
                    *(adopted["metadata"].get("ownerReferences") or []),
                    owner_reference(rs),
                ]
                mine.append(self.store.update(PODS, ns, pod["metadata"]["name"], adopted, manager=MANAGER))
        return mine

    def _write_status(self, rs: Obj, active: list[Obj]) -> None:
        min_ready = int_field(rs, "minReadySeconds")
        template_labels: dict[str, Any] = ((rs["spec"].get("template") or {}).get("metadata") or {}).get(
            "labels"
        ) or {}

        def fully_labeled(pod: Obj) -> bool:
            labels = pod["metadata"].get("labels") or {}
            return all(labels.get(k) == v for k, v in template_labels.items())

        status = nonzero(
            {
                "replicas": len(active),
                "fullyLabeledReplicas": sum(1 for p in active if fully_labeled(p)),
                "readyReplicas": sum(1 for p in active if pod_ready(p)),
                "availableReplicas": sum(1 for p in active if pod_available(p, min_ready)),
                "observedGeneration": rs["metadata"].get("generation", 1),
            },
            "replicas",
        )
        self._later.within(availability_pending(active, min_ready))
        current = self.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
        if current.get("status") == status:
            return
        current["status"] = status
        self.store.update(
            REPLICASETS,
            rs["metadata"]["namespace"],
            rs["metadata"]["name"],
            current,
            subresource="status",
            manager=MANAGER,
        )
