"""The Deployment controller: a Deployment's pod template becomes ReplicaSets, rolled as upstream does.

Each template gets a ReplicaSet named `<deployment>-<hash>` (`template_hash` of the template, with the
`pod-template-hash` label on its selector, template and labels) and a `deployment.kubernetes.io/revision`
one above the highest old one; the Deployment carries its new ReplicaSet's revision. An old template
coming back (`kubectl rollout undo` patches it in) makes its ReplicaSet new again under the next
revision, the old number kept in `deployment.kubernetes.io/revision-history`. Old ReplicaSets at zero
beyond `revisionHistoryLimit` are deleted, lowest revision first.

RollingUpdate follows upstream's arithmetic (`maxSurge` rounded up, `maxUnavailable` down, 1 unavailable
when both are 0): scale the new ReplicaSet up while all ReplicaSets' replicas stay within
replicas+maxSurge, scale old ones down (unhealthy replicas first) while availability stays at least
replicas-maxUnavailable. Recreate scales old ReplicaSets to 0, waits for their pods to be gone, then
scales the new one up. A paused Deployment creates no ReplicaSet and only scales the active one.

Status and conditions as upstream: Available (`MinimumReplicasAvailable`/`MinimumReplicasUnavailable`)
and Progressing (`NewReplicaSetCreated`, `FoundNewReplicaSet`, `ReplicaSetUpdated`,
`NewReplicaSetAvailable`, `DeploymentPaused`). Not done: `progressDeadlineSeconds` (no
`ProgressDeadlineExceeded`) and proportional scaling of several active ReplicaSets mid-rollout (a scale
during a rollout is absorbed by the rolling arithmetic instead).
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

from sim.controllers.base import Controller
from sim.controllers.replicaset import REPLICASETS
from sim.controllers.workloads import (
    HASH_LABEL,
    PODS,
    controlled_by,
    controller_of,
    int_field,
    nonzero,
    owner_reference,
    selector_of,
    set_condition,
    template_hash,
    templates_equal,
)
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.events import record_event
from sim.k8s.store import Event, Obj

log = logging.getLogger(__name__)

DEPLOYMENTS = resources.by_key("deployments.apps")
MANAGER = "deployment-controller"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
#: Deployment annotations not copied to its ReplicaSets (upstream's annotationsToSkip)
NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)


def resolve(value: Any, total: int, *, round_up: bool) -> int:
    """An int-or-percent (`maxSurge`, `maxUnavailable`) as a count of `total`."""
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value or 0)


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as upstream's ResolveFenceposts; (0, 0) for Recreate."""
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    replicas = int_field(deployment, "replicas", 1)
    surge = resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(deployment: Obj) -> int:
    """What the Available condition tolerates (upstream's MaxUnavailable)."""
    _, unavailable = surge_and_unavailable(deployment)
    strategy = (deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate")
    return min(unavailable, int_field(deployment, "replicas", 1)) if strategy == "RollingUpdate" else 0


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def spec_replicas(rs: Obj) -> int:
    return int_field(rs, "replicas", 1)


def status_count(rs: Obj, name: str) -> int:
    return int((rs.get("status") or {}).get(name, 0) or 0)


def by_creation(rss: list[Obj]) -> list[Obj]:
    return sorted(rss, key=lambda r: (r["metadata"].get("creationTimestamp", ""), r["metadata"]["name"]))


class DeploymentController(Controller):
    name = MANAGER
    watches = frozenset({DEPLOYMENTS.key, REPLICASETS.key, PODS.key})

    def wants(self, event: Event) -> bool:
        if event.key in (DEPLOYMENTS.key, REPLICASETS.key):
            return True
        # pods only matter to Recreate, which waits for the old pods to be gone
        return event.key == PODS.key and event.type == "DELETED"

    def reconcile(self) -> None:
        for deployment in list(self.store.iter_objects(DEPLOYMENTS)):
            meta = deployment["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            try:
                self.sync(self.store.get(DEPLOYMENTS, meta["namespace"], meta["name"]))
            except ApiError as err:  # it changed or went meanwhile: the next pass sees it
                log.debug("deployment %s: %s", meta["name"], err)

    # ------------------------------------------------------------------ one deployment

    def sync(self, d: Obj) -> None:
        if not selector_of(d):
            return
        rss = self._claim(d)
        new_rs = next(
            (rs for rs in by_creation(rss) if templates_equal(rs["spec"]["template"], d["spec"]["template"])),
            None,
        )
        old_rss = [rs for rs in rss if rs is not new_rs]
        created = False
        if d["spec"].get("paused"):
            if new_rs is not None:
                self._sync_revision(d, new_rs, old_rss)
            self._scale_paused(d, new_rs, old_rss)
        elif (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            new_rs, created = self._recreate(d, new_rs, old_rss)
        else:
            new_rs, created = self._rolling(d, new_rs, old_rss)
        self._cleanup(d, [rs for rs in old_rss if rs is not new_rs])
        all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
        self._write_status(d, new_rs, all_rss, created)

    def _claim(self, d: Obj) -> list[Obj]:
        """The ReplicaSets this Deployment controls, after adopting matching orphans."""
        ns = d["metadata"]["namespace"]
        selector = selector_of(d)
        mine: list[Obj] = []
        for rs in list(self.store.iter_objects(REPLICASETS, ns)):
            if rs["metadata"].get("deletionTimestamp"):
                continue
            if controlled_by(rs, d):
                mine.append(self.store.get(REPLICASETS, ns, rs["metadata"]["name"]))
            elif controller_of(rs) is None and selector.matches(rs):
                adopted = self.store.get(REPLICASETS, ns, rs["metadata"]["name"])
                adopted["metadata"]["ownerReferences"] = [
                    *(adopted["metadata"].get("ownerReferences") or []),
                    owner_reference(d),
                ]
                mine.append(
                    self.store.update(REPLICASETS, ns, rs["metadata"]["name"], adopted, manager=MANAGER)
                )
        return mine

    # ------------------------------------------------------------------ revisions and the new ReplicaSet

    def _annotations_for(self, d: Obj, rs_annotations: dict[str, str], next_revision: int) -> dict[str, str]:
        """The new ReplicaSet's annotations: the Deployment's (but the skipped ones), and its revision
        raised to `next_revision` (the one it had kept in the revision history)."""
        out = dict(rs_annotations)
        for key, value in (d["metadata"].get("annotations") or {}).items():
            if key not in NOT_COPIED:
                out[key] = value
        had = out.get(REVISION)
        if had is None or int(had) < next_revision:
            if had is not None:
                history = [h for h in out.get(REVISION_HISTORY, "").split(",") if h]
                out[REVISION_HISTORY] = ",".join([*history, had])
            out[REVISION] = str(next_revision)
        return out

    def _sync_revision(self, d: Obj, new_rs: Obj, old_rss: list[Obj]) -> None:
        """The new ReplicaSet's revision (and copied annotations) and `minReadySeconds` kept current."""
        next_revision = max((revision(rs) for rs in old_rss), default=0) + 1
        annotations = self._annotations_for(d, new_rs["metadata"].get("annotations") or {}, next_revision)
        min_ready = int_field(d, "minReadySeconds")
        if annotations != (new_rs["metadata"].get("annotations") or {}) or min_ready != int_field(
            new_rs, "minReadySeconds"
        ):
            current = self.store.get(REPLICASETS, d["metadata"]["namespace"], new_rs["metadata"]["name"])
            current["metadata"]["annotations"] = annotations
            current["spec"]["minReadySeconds"] = min_ready
            self._replace(
                new_rs,
                self.store.update(
                    REPLICASETS,
                    d["metadata"]["namespace"],
                    new_rs["metadata"]["name"],
                    current,
                    manager=MANAGER,
                ),
            )

    def _new_replica_set(self, d: Obj, old_rss: list[Obj], replicas: int) -> Obj | None:
        """Create the ReplicaSet of the Deployment's template (None on a hash collision: the collision
        count goes up and the next pass tries the next name)."""
        ns = d["metadata"]["namespace"]
        collisions = int((d.get("status") or {}).get("collisionCount", 0) or 0)
        pod_hash = template_hash(d["spec"]["template"], collisions)
        template = copy.deepcopy(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        surge, _ = surge_and_unavailable(d)
        desired = int_field(d, "replicas", 1)
        annotations = self._annotations_for(d, {}, max((revision(rs) for rs in old_rss), default=0) + 1)
        annotations[DESIRED_REPLICAS] = str(desired)
        annotations[MAX_REPLICAS] = str(desired + surge)
        name = f"{d['metadata']['name']}-{pod_hash}"
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int_field(d, "minReadySeconds"),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.store.create(REPLICASETS, rs, ns, manager=MANAGER)
        except ApiError as err:
            if err.code != 409:
                raise
            current = self.store.get(DEPLOYMENTS, ns, d["metadata"]["name"])
            current["status"] = {**(current.get("status") or {}), "collisionCount": collisions + 1}
            self.store.update(
                DEPLOYMENTS, ns, d["metadata"]["name"], current, subresource="status", manager=MANAGER
            )
            return None
        if replicas > 0:
            record_event(
                self.store,
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {name} to {replicas}",
                MANAGER,
            )
        return created

    def _scale(self, d: Obj, rs: Obj, replicas: int) -> bool:
        """Set a ReplicaSet's replicas (and its desired/max annotations); whether it changed."""
        was = spec_replicas(rs)
        if was == replicas:
            return False
        surge, _ = surge_and_unavailable(d)
        desired = int_field(d, "replicas", 1)
        current = self.store.get(REPLICASETS, d["metadata"]["namespace"], rs["metadata"]["name"])
        current["spec"]["replicas"] = replicas
        annotations = current["metadata"].setdefault("annotations", {})
        annotations[DESIRED_REPLICAS] = str(desired)
        annotations[MAX_REPLICAS] = str(desired + surge)
        self._replace(
            rs,
            self.store.update(
                REPLICASETS, d["metadata"]["namespace"], rs["metadata"]["name"], current, manager=MANAGER
            ),
        )
        direction = "up" if replicas > was else "down"
        record_event(
            self.store,
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} to {replicas} from {was}",
            MANAGER,
        )
        return True

    @staticmethod
    def _replace(rs: Obj, updated: Obj) -> None:
        rs.clear()
        rs.update(updated)

    # ------------------------------------------------------------------ strategies

    def _rolling(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> tuple[Obj | None, bool]:
        desired = int_field(d, "replicas", 1)
        surge, unavailable = surge_and_unavailable(d)
        all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
        total = sum(spec_replicas(rs) for rs in all_rss)
        if new_rs is None:
            start = min(max(0, desired + surge - total), desired) if old_rss else desired
            return self._new_replica_set(d, old_rss, start), True
        self._sync_revision(d, new_rs, old_rss)
        # scale the new ReplicaSet up (within replicas + maxSurge) or down to the desired count
        have = spec_replicas(new_rs)
        if have > desired:
            self._scale(d, new_rs, desired)
            return new_rs, False
        if have < desired:
            room = desired + surge - total
            if room > 0 and self._scale(d, new_rs, have + min(room, desired - have)):
                return new_rs, False
        # scale old ReplicaSets down while availability stays at replicas - maxUnavailable
        old_total = sum(spec_replicas(rs) for rs in old_rss)
        if old_total == 0:
            return new_rs, False
        min_available = desired - unavailable
        new_unavailable = spec_replicas(new_rs) - status_count(new_rs, "availableReplicas")
        max_scaled_down = total - min_available - new_unavailable
        if max_scaled_down <= 0:
            return new_rs, False
        cleaned = 0
        for rs in by_creation(old_rss):  # unhealthy replicas first, or they block the rollout
            if cleaned >= max_scaled_down:
                break
            target, available = spec_replicas(rs), status_count(rs, "availableReplicas")
            if target == 0 or target <= available:
                continue
            count = min(max_scaled_down - cleaned, target - available)
            self._scale(d, rs, target - count)
            cleaned += count
        available_now = sum(status_count(rs, "availableReplicas") for rs in all_rss)
        budget = available_now - min_available
        scaled = 0
        for rs in by_creation(old_rss):
            if scaled >= budget:
                break
            target = spec_replicas(rs)
            if target == 0:
                continue
            count = min(target, budget - scaled)
            self._scale(d, rs, target - count)
            scaled += count
        return new_rs, False

    def _recreate(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> tuple[Obj | None, bool]:
        if new_rs is not None:
            self._sync_revision(d, new_rs, old_rss)
        scaled_down = [self._scale(d, rs, 0) for rs in old_rss if spec_replicas(rs) > 0]
        if scaled_down:
            return new_rs, False
        old_uids = {rs["metadata"]["uid"] for rs in old_rss}
        for pod in self.store.iter_objects(PODS, d["metadata"]["namespace"]):
            ref = controller_of(pod)
            running = (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            if ref is not None and ref.get("uid") in old_uids and running:
                return new_rs, False  # wait for the old pods to be gone
        desired = int_field(d, "replicas", 1)
        if new_rs is None:
            return self._new_replica_set(d, old_rss, desired), True
        self._scale(d, new_rs, desired)
        return new_rs, False

    def _scale_paused(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Paused: no rollout; a scale goes to the one active ReplicaSet (the new one when it is)."""
        active = [rs for rs in [new_rs, *old_rss] if rs is not None and spec_replicas(rs) > 0]
        if len(active) > 1:
            return
        target = active[0] if active else new_rs
        if target is not None:
            self._scale(d, target, int_field(d, "replicas", 1))

    def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        """Delete the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`."""
        limit = int_field(d, "revisionHistoryLimit", 10)
        alive = sorted(old_rss, key=lambda rs: (revision(rs), rs["metadata"].get("creationTimestamp", "")))
        for rs in alive[: max(0, len(alive) - limit)]:
            settled = status_count(rs, "observedGeneration") >= int(rs["metadata"].get("generation", 1))
            if spec_replicas(rs) == 0 and status_count(rs, "replicas") == 0 and settled:
                self.store.delete(REPLICASETS, d["metadata"]["namespace"], rs["metadata"]["name"])

    # ------------------------------------------------------------------ status

    def _write_status(self, d: Obj, new_rs: Obj | None, all_rss: list[Obj], created: bool) -> None:
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        desired = int_field(d, "replicas", 1)
        old_status = d.get("status") or {}
        available = sum(status_count(rs, "availableReplicas") for rs in all_rss)
        total = sum(spec_replicas(rs) for rs in all_rss)
        counts = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(status_count(rs, "replicas") for rs in all_rss),
            "updatedReplicas": status_count(new_rs, "replicas") if new_rs is not None else 0,
            "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in all_rss),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
            "collisionCount": old_status.get("collisionCount", 0),
        }
        conditions = list(old_status.get("conditions") or [])
        if available >= desired - max_unavailable(d):
            conditions = set_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                updated=True,
            )
        else:
            conditions = set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                updated=True,
            )
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        progressing = next((c for c in conditions if c.get("type") == "Progressing"), None)
        complete = (
            new_rs is not None
            and counts["updatedReplicas"] == desired
            and counts["replicas"] == desired
            and available == desired
        )
        changed = any(
            counts[k] != old_status.get(k, 0) for k in ("replicas", "updatedReplicas", "availableReplicas")
        )
        progress: tuple[str, str, str] | None = None
        if d["spec"].get("paused"):
            progress = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif complete:
            progress = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif created and new_rs is not None:
            progress = ("True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        elif new_rs is not None and (
            changed
            or progressing is None
            or progressing.get("reason") in ("DeploymentPaused", "NewReplicaSetAvailable")
        ):
            reason = "FoundNewReplicaSet" if progressing is None else "ReplicaSetUpdated"
            message = (
                f'Found new replica set "{rs_name}"'
                if progressing is None
                else f'ReplicaSet "{rs_name}" is progressing.'
            )
            progress = ("True", reason, message)
        if progress is not None:
            conditions = set_condition(conditions, "Progressing", *progress, updated=True)
        status = nonzero(counts)
        # conditions in upstream's order: Available, then Progressing
        status["conditions"] = sorted(
            conditions, key=lambda c: {"Available": 0, "Progressing": 1}.get(c.get("type", ""), 2)
        )
        if new_rs is not None:
            self._set_revision(d, revision(new_rs))
        if status != old_status:
            current = self.store.get(DEPLOYMENTS, ns, name)
            current["status"] = status
            self.store.update(DEPLOYMENTS, ns, name, current, subresource="status", manager=MANAGER)

    def _set_revision(self, d: Obj, number: int) -> None:
        annotations = d["metadata"].get("annotations") or {}
        if annotations.get(REVISION) == str(number):
            return
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        current = self.store.get(DEPLOYMENTS, ns, name)
        current["metadata"].setdefault("annotations", {})[REVISION] = str(number)
        self.store.update(DEPLOYMENTS, ns, name, current, manager=MANAGER)
