"""What a write sets off in other objects, as the store and its cascades agree on it.

Upstream this is the work of kube-controller-manager's garbage collector and namespace controller, which
follow a write a moment later; here the store calls each of its cascades within the write, in order, so
that the result is there when the write returns. The cascades (`garbagecollector`, `namespaces`) see the
store only as `Objects`, the part of its interface they use, so they do not import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

from sim.k8s.objects import Obj
from sim.k8s.resources import ResourceType

#: When a cascade hears of a deletion: the object was marked (`deletionTimestamp` set; it stays while
#: finalizers remain), is about to be removed, or was removed.
Moment = Literal["marked", "removing", "removed"]


class Objects(Protocol):
    """The store's reads and writes a cascade uses (the writes may cascade in turn)."""

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None: ...

    def iter_objects(self, rt: ResourceType, namespace: str | None = None) -> Iterator[Obj]: ...

    def create(self, rt: ResourceType, obj: Obj, namespace: str | None = None) -> Obj: ...

    def update(self, rt: ResourceType, namespace: str | None, name: str, obj: Obj) -> Obj: ...

    def delete(
        self, rt: ResourceType, namespace: str | None, name: str, *, propagation: str | None = None
    ) -> Obj: ...

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> Obj: ...


class Cascade(Protocol):
    """One kind of consequence. The object it is given is the store's own (read-only)."""

    def created(self, store: Objects, rt: ResourceType, obj: Obj) -> None:
        """`obj` was just stored."""
        ...

    def deleting(self, store: Objects, rt: ResourceType, obj: Obj, propagation: str, moment: Moment) -> None:
        """`obj` is being deleted with `propagation` (Background, Foreground or Orphan); `moment` says
        where the deletion is (a graceful pod's first delete, which only marks it, is not told)."""
        ...
