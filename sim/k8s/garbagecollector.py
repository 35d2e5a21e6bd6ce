"""Owner-reference garbage collection: what kube-controller-manager's garbage collector does when an
owner is deleted, done by the store within the delete (a `cascade.Cascade`), so that the result is there
when the delete returns: `kubectl delete deploy` finds the ReplicaSets and pods gone, where upstream they
would be gone a moment later.

The dependents of an owner are the objects whose `metadata.ownerReferences` name its uid. The delete's
propagation policy decides what becomes of them:
- Background (the default): the owner goes, then each dependent is deleted (Background again, so down
  the chain), unless another of its owners still exists: then it only loses its reference to this one.
- Foreground: the same, the dependents first, then the owner.
- Orphan: the dependents stay, without their reference to the owner.
An owner that stays for its finalizers has its dependents dealt with at once, whatever the policy.
"""

from __future__ import annotations

import copy

from sim.k8s import resources
from sim.k8s.cascade import Moment, Objects
from sim.k8s.objects import Obj
from sim.k8s.resources import ResourceType


class GarbageCollector:
    """The store's cascade for owner references."""

    def created(self, store: Objects, rt: ResourceType, obj: Obj) -> None:
        """Nothing: only deletions set the collector off."""

    def deleting(self, store: Objects, rt: ResourceType, obj: Obj, propagation: str, moment: Moment) -> None:
        foreground = propagation == "Foreground"
        if (
            moment == "marked"
            or (moment == "removing" and foreground)
            or (moment == "removed" and not foreground)
        ):
            collect(store, obj["metadata"]["uid"], propagation)


def collect(store: Objects, owner_uid: str, propagation: str) -> None:
    """Deal with the dependents of the owner `owner_uid`, which is being deleted with `propagation`."""
    for rt in resources.STORAGE_TYPES:
        for obj in list(store.iter_objects(rt)):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == owner_uid for r in refs):
                continue
            namespace, name = obj["metadata"].get("namespace") or None, obj["metadata"]["name"]
            remaining = [r for r in refs if r.get("uid") != owner_uid]
            live = [r for r in remaining if _exists(store, str(r.get("uid")))]
            if propagation == "Orphan" or live:
                updated = copy.deepcopy(obj)
                updated["metadata"]["ownerReferences"] = remaining
                if not remaining:
                    updated["metadata"].pop("ownerReferences")
                store.update(rt, namespace, name, updated)
            elif store.find(rt, namespace, name) is not None:
                store.delete(rt, namespace, name, propagation="Background")


def _exists(store: Objects, uid: str) -> bool:
    return any(o["metadata"]["uid"] == uid for rt in resources.STORAGE_TYPES for o in store.iter_objects(rt))
