"""The StatefulSet controller: pods `<sts>-0` … `<sts>-N-1` with stable names, made and removed in order.

OrderedReady (the default) creates ordinal i only when every lower one is Running and Ready (for
`minReadySeconds`), and removes surplus pods one at a time from the highest ordinal while the rest are
healthy; Parallel creates and removes them all at once. A pod that is deleted is recreated under the same
name once the old one is gone; a finished (Failed/Succeeded) pod is deleted to be recreated. Each pod
carries `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and `controller-revision-hash`
(`<sts>-<template hash>`), and `hostname`/`subdomain` from its name and `serviceName`.

RollingUpdate replaces out-of-date pods from the highest ordinal down to `partition`, one at a time,
each only when the ones above are healthy again; OnDelete leaves them alone. Status: replicas,
readyReplicas, availableReplicas, currentReplicas, updatedReplicas, currentRevision, updateRevision,
observedGeneration. Events as upstream (`SuccessfulCreate`, `SuccessfulDelete`).

Not done: `volumeClaimTemplates` are ignored (no PersistentVolumeClaims are served), no ControllerRevision
objects are kept (so a pod recreated below the partition takes the current template, not its old
revision's), and orphan pods are not adopted.
"""

from __future__ import annotations

import logging
import re

from sim.controllers.base import Controller
from sim.controllers.workloads import (
    PODS,
    TERMINAL_PHASES,
    DelayedWake,
    availability_pending,
    controlled_by,
    controller_of,
    int_field,
    nonzero,
    pod_available,
    pod_from_template,
    pod_ready,
    template_hash,
)
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.events import record_event
from sim.k8s.store import Event, Obj, Store

log = logging.getLogger(__name__)

STATEFULSETS = resources.by_key("statefulsets.apps")
MANAGER = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"


def update_revision(sts: Obj) -> str:
    return f"{sts['metadata']['name']}-{template_hash(sts['spec'].get('template') or {})}"


def ordinal(sts: Obj, pod: Obj) -> int | None:
    """The pod's ordinal when its name is `<sts>-<n>`."""
    match = re.fullmatch(re.escape(sts["metadata"]["name"]) + r"-(0|[1-9][0-9]*)", pod["metadata"]["name"])
    return int(match.group(1)) if match else None


class StatefulSetController(Controller):
    name = MANAGER
    watches = frozenset({STATEFULSETS.key, PODS.key})

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._later = DelayedWake(self.wake)

    def wants(self, event: Event) -> bool:
        if event.key == STATEFULSETS.key:
            return True
        if event.key != PODS.key:
            return False
        refs = [controller_of(o) for o in (event.obj, event.old) if o is not None]
        return any(r is not None and r.get("kind") == "StatefulSet" for r in refs)

    def reconcile(self) -> None:
        for sts in list(self.store.iter_objects(STATEFULSETS)):
            meta = sts["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            try:
                self.sync(self.store.get(STATEFULSETS, meta["namespace"], meta["name"]))
            except ApiError as err:  # it changed or went meanwhile: the next pass sees it
                log.debug("statefulset %s: %s", meta["name"], err)

    def _healthy(self, sts: Obj, pod: Obj | None) -> bool:
        return (
            pod is not None
            and not pod["metadata"].get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") == "Running"
            and pod_available(pod, int_field(sts, "minReadySeconds"))
        )

    def sync(self, sts: Obj) -> None:
        ns = sts["metadata"]["namespace"]
        pods: dict[int, Obj] = {}
        for pod in self.store.iter_objects(PODS, ns):
            number = ordinal(sts, pod)
            if number is not None and controlled_by(pod, sts):
                pods[number] = pod
        replicas = int_field(sts, "replicas", 1)
        parallel = sts["spec"].get("podManagementPolicy") == "Parallel"
        revision = update_revision(sts)
        healthy = self._create_and_replace(sts, pods, replicas, revision, parallel)
        if healthy or parallel:
            gone = self._remove_surplus(sts, pods, replicas, parallel)
            if healthy and gone:
                self._roll(sts, pods, replicas, revision)
        self._write_status(sts, revision)

    def _create_and_replace(
        self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str, parallel: bool
    ) -> bool:
        """Create missing pods in order (and delete finished ones); whether all are there and healthy."""
        settled = True
        for number in range(replicas):
            pod = pods.get(number)
            if pod is None:
                self._create(sts, number, revision)
                settled = False
            elif (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
                if not pod["metadata"].get("deletionTimestamp"):
                    self._delete(sts, pod)
                settled = False
            elif not self._healthy(sts, pod):
                settled = False
            if not settled and not parallel:
                return False
        return settled

    def _remove_surplus(self, sts: Obj, pods: dict[int, Obj], replicas: int, parallel: bool) -> bool:
        """Delete pods above `replicas`, from the highest; whether none is left."""
        condemned = sorted((n for n in pods if n >= replicas), reverse=True)
        for number in condemned:
            pod = pods[number]
            if not pod["metadata"].get("deletionTimestamp"):
                self._delete(sts, pod)
            if not parallel:
                return False
        return not condemned

    def _roll(self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str) -> None:
        """RollingUpdate: replace the highest out-of-date pod at or above the partition, one at a time."""
        strategy = sts["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0) or 0)
        for number in range(replicas - 1, partition - 1, -1):
            pod = pods[number]
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                self._delete(sts, pod)
                return
            if not self._healthy(sts, pod):
                return

    def _create(self, sts: Obj, number: int, revision: str) -> None:
        name = f"{sts['metadata']['name']}-{number}"
        pod = pod_from_template(sts["spec"].get("template") or {}, sts, name=name)
        labels = pod["metadata"].setdefault("labels", {})
        labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(number), REVISION_LABEL: revision})
        pod["spec"]["hostname"] = name
        if sts["spec"].get("serviceName"):
            pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
        self.store.create(PODS, pod, sts["metadata"]["namespace"], manager=MANAGER)
        record_event(
            self.store,
            sts,
            "Normal",
            "SuccessfulCreate",
            f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful",
            MANAGER,
        )

    def _delete(self, sts: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        self.store.delete(PODS, sts["metadata"]["namespace"], name)
        record_event(
            self.store,
            sts,
            "Normal",
            "SuccessfulDelete",
            f"delete Pod {name} in StatefulSet {sts['metadata']['name']} successful",
            MANAGER,
        )

    def _write_status(self, sts: Obj, revision: str) -> None:
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        min_ready = int_field(sts, "minReadySeconds")
        live = [
            p
            for p in self.store.iter_objects(PODS, ns)
            if ordinal(sts, p) is not None
            and controlled_by(p, sts)
            and not p["metadata"].get("deletionTimestamp")
        ]
        old_status = sts.get("status") or {}
        current_revision = old_status.get("currentRevision") or revision

        def at(rev: str) -> int:
            return sum(1 for p in live if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == rev)

        ready = sum(1 for p in live if pod_ready(p))
        updated = at(revision)
        if updated == len(live) and ready == len(live):
            current_revision = revision  # the rolling update is complete
        status = nonzero(
            {
                "observedGeneration": sts["metadata"].get("generation", 1),
                "replicas": len(live),
                "readyReplicas": ready,
                "availableReplicas": sum(1 for p in live if pod_available(p, min_ready)),
                "currentReplicas": at(current_revision),
                "updatedReplicas": updated,
                "currentRevision": current_revision,
                "updateRevision": revision,
                "collisionCount": 0,
            },
            "replicas",
            "availableReplicas",
            "collisionCount",
        )
        self._later.within(availability_pending(live, min_ready))
        if status != old_status:
            current = self.store.get(STATEFULSETS, ns, name)
            current["status"] = status
            self.store.update(STATEFULSETS, ns, name, current, subresource="status", manager=MANAGER)
