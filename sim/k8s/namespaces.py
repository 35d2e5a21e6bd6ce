"""Namespace lifecycle: what kube-controller-manager does when a namespace comes and goes, done by the
store within the create or the delete (a `cascade.Cascade`): a new namespace gets its `default`
ServiceAccount (the service account controller's work), and a deleted namespace's objects all go with it
(the namespace controller's), at once, with no grace period or finalizer holding them, so that
`kubectl delete namespace` returns with the namespace empty.

Refusing new objects in a namespace that does not exist or is being deleted is the API server's own
admission (NamespaceLifecycle), in the store.
"""

from __future__ import annotations

from sim.k8s import resources
from sim.k8s.cascade import Moment, Objects
from sim.k8s.objects import Obj
from sim.k8s.resources import ResourceType

DEFAULT_SERVICE_ACCOUNT = "default"


class NamespaceLifecycle:
    """The store's cascade for namespaces."""

    def created(self, store: Objects, rt: ResourceType, obj: Obj) -> None:
        if rt is not resources.NAMESPACE:
            return
        namespace = obj["metadata"]["name"]
        account = resources.SERVICE_ACCOUNT
        if store.find(account, namespace, DEFAULT_SERVICE_ACCOUNT) is None:
            store.create(account, {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace}})

    def deleting(self, store: Objects, rt: ResourceType, obj: Obj, propagation: str, moment: Moment) -> None:
        if rt is resources.NAMESPACE and moment == "removed":
            empty(store, obj["metadata"]["name"])


def empty(store: Objects, namespace: str) -> None:
    """Remove every object in `namespace`."""
    for rt in resources.STORAGE_TYPES:
        if not rt.namespaced:
            continue
        for obj in list(store.iter_objects(rt, namespace)):
            if store.find(rt, namespace, obj["metadata"]["name"]) is not None:
                store.remove(rt, namespace, obj["metadata"]["name"])
