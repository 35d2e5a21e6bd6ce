"""The model: an in-memory object store with the API server's semantics, independent of HTTP.

Objects are plain dicts shaped as the API returns them (`objects.Obj`). Every write takes the next value
of one global resourceVersion counter, lands in a bounded history and is fanned out to the matching
watchers and listeners. Callers get deep copies; nothing outside this module mutates a stored object.

Around storage and watch, the store runs what the API server runs on each write: defaulting, mutating
admission (`admission`), validation, field managers (`fieldmanager`), graceful deletion and finalizers;
and, within the write, the work that kube-controller-manager would do a moment after it in other objects
(`cascades`: owner-reference garbage collection in `garbagecollector`, namespace lifecycle in
`namespaces`), so that a delete's result is whole when it returns. With a data directory it starts from
the snapshot there (`persistence`).

The store is synchronous and single-threaded: it is driven from one asyncio loop (the wire's), so a
controller running in that loop can use it directly.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import copy
import json
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.k8s import errors, fieldmanager, patch, resources
from sim.k8s.cascade import Cascade, Moment
from sim.k8s.defaults import ClusterIPs, apply_defaults
from sim.k8s.errors import ApiError
from sim.k8s.garbagecollector import GarbageCollector
from sim.k8s.namespaces import NamespaceLifecycle
from sim.k8s.objects import Obj, after, now
from sim.k8s.persistence import Snapshots
from sim.k8s.resources import ResourceType
from sim.k8s.selectors import FieldSelector, LabelSelector

__all__ = ["Cascade", "Event", "Moment", "Obj", "Store", "Watcher", "now"]

DEFAULT_HISTORY = 10_000
DEFAULT_WATCH_QUEUE = 10_000


@dataclass(frozen=True)
class Event:
    """One change: ADDED, MODIFIED or DELETED, with the object before it (None for ADDED)."""

    type: str
    key: str
    obj: Obj
    old: Obj | None
    rv: int


@dataclass
class Watcher:
    """A subscription; events wait in `queue` until the wire sends them. A watcher that falls more than
    `max_queue` events behind is closed (as the API server drops slow watchers): `closed` then holds why."""

    rt: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    max_queue: int = DEFAULT_WATCH_QUEUE
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    closed: str | None = None

    def _visible(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)

    def offer(self, event: Event) -> None:
        """Queue `event` as this watcher sees it: moving into or out of the selection is ADDED/DELETED."""
        if self.closed or event.key != self.rt.key:
            return
        now_in = event.type != "DELETED" and self._visible(event.obj)
        was_in = self._visible(event.old) if event.type != "ADDED" else False
        if event.type == "DELETED":
            kind = "DELETED" if self._visible(event.obj) else None
        elif now_in and was_in:
            kind = "MODIFIED"
        elif now_in:
            kind = "ADDED"
        elif was_in:
            kind = "DELETED"
        else:
            kind = None
        if kind is None:
            return
        self.push({"type": kind, "object": copy.deepcopy(event.obj)})

    def push(self, item: dict[str, Any]) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.max_queue:
            self.closed = "watcher fell too far behind"
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(item)

    def close(self, why: str = "closed") -> None:
        if not self.closed:
            self.closed = why
            self.queue.put_nowait(None)


def _encode_continue(rv: int, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": after}).encode()).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise errors.bad_request("continue key is not valid") from exc


def _spec_view(obj: Obj) -> Obj:
    """Everything generation tracks: the object without metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    """All objects of the cluster, by resource type key, then by (namespace, name)."""

    def __init__(
        self, history: int = DEFAULT_HISTORY, data_dir: Path | None = None, *, graceful_pods: bool = False
    ) -> None:
        #: With a kubelet: a pod bound to a node is only marked on delete (deletionTimestamp +
        #: grace period) and goes when the kubelet deletes it again with grace 0, as upstream.
        self.graceful_pods = graceful_pods
        self.rv = 0
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {rt.key: {} for rt in resources.STORAGE_TYPES}
        self.history: deque[Event] = deque(maxlen=history)
        self.floor = 0  # events after this rv are all in history
        self.watchers: list[Watcher] = []
        self.listeners: list[Callable[[Event], None]] = []
        #: mutating admission, as upstream's webhooks: each is called with every object being created
        #: (after defaulting, before validation) and may change it, or refuse it by raising an ApiError;
        #: registered by whoever wires the cluster (`sim.cluster`)
        self.admission: list[Callable[[ResourceType, Obj], None]] = []
        #: what creates and deletes set off in other objects, within the write (see `Cascade`)
        self.cascades: list[Cascade] = [GarbageCollector(), NamespaceLifecycle()]
        self.ips = ClusterIPs()
        #: the snapshot in `data_dir` this store starts from and is saved to; None: kept in memory only
        self.snapshots = Snapshots(self, data_dir) if data_dir is not None else None
        if self.snapshots is not None:
            self.snapshots.load()
        self.floor = self.rv
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if ("", ns) not in self.objects[resources.NAMESPACE.key]:
                self.create(resources.NAMESPACE, {"metadata": {"name": ns}})

    # ------------------------------------------------------------------ internals

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _emit(self, event: Event) -> None:
        if len(self.history) == self.history.maxlen and self.history:
            self.floor = self.history[0].rv
        self.history.append(event)
        for watcher in list(self.watchers):
            watcher.offer(event)
            if watcher.closed:
                self._drop(watcher)
        for listener in list(self.listeners):
            listener(event)

    def _drop(self, watcher: Watcher) -> None:
        with contextlib.suppress(ValueError):
            self.watchers.remove(watcher)

    def _ns(self, rt: ResourceType, namespace: str | None) -> str:
        if not rt.namespaced:
            return ""
        if not namespace:
            raise errors.bad_request(
                "the namespace of the object does not match the namespace on the request"
            )
        return namespace

    def _raw(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.objects[rt.key].get((self._ns(rt, namespace), name))
        if obj is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return obj

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if rt.namespaced and ("", namespace) not in self.objects[resources.NAMESPACE.key]:
            raise ApiError(
                404, "NotFound", f'namespaces "{namespace}" not found', name=namespace, kind="namespaces"
            )
        ns_obj = self.objects[resources.NAMESPACE.key].get(("", namespace)) if rt.namespaced else None
        if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    # ------------------------------------------------------------------ reads

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        return copy.deepcopy(self._raw(rt, namespace, name))

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """The stored object (not a copy: read-only), or None when there is none."""
        return self.objects[rt.key].get((self._ns(rt, namespace), name))

    def iter_objects(self, rt: ResourceType, namespace: str | None = None) -> Iterator[Obj]:
        """Stored objects of `rt` (not copies: read-only), sorted by namespace and name."""
        table = self.objects[rt.key]
        for key in sorted(table):
            if namespace is None or not rt.namespaced or key[0] == namespace:
                yield table[key]

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Obj:
        """A `<Kind>List`, with `metadata.continue` when `limit` cut it short."""
        labels = LabelSelector.parse(label_selector)
        fields = FieldSelector.parse(field_selector)
        after = ""
        list_rv = self.rv
        if continue_token:
            list_rv, after = _decode_continue(continue_token)
        items: list[Obj] = []
        remaining = 0
        last = ""
        for obj in self.iter_objects(rt, namespace):
            position = f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
            if after and position <= after:
                continue
            if not (labels.matches(obj) and fields.matches(obj)):
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(copy.deepcopy(obj))
            last = position
        meta: Obj = {"resourceVersion": str(list_rv if continue_token else self.rv)}
        if remaining:
            meta["continue"] = _encode_continue(list_rv, last)
            meta["remainingItemCount"] = remaining
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items}

    # ------------------------------------------------------------------ writes

    def create(
        self,
        rt: ResourceType,
        obj: Obj,
        namespace: str | None = None,
        *,
        manager: str | None = None,
        dry_run: bool = False,
        validate: Callable[[Obj], None] | None = None,
    ) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        body_ns = meta.get("namespace")
        if rt.namespaced:
            ns = namespace or body_ns or "default"
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            ns = ""
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise errors.invalid(
                    rt.kind,
                    "",
                    [
                        {
                            "type": "FieldValueRequired",
                            "message": "name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
        name = str(meta["name"])
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if rt.namespaced:
            self._check_namespace(rt, ns)
        if (ns, name) in self.objects[rt.key]:
            raise errors.already_exists(rt.group, rt.plural, name)
        for server_field in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ):
            meta.pop(server_field, None)
        if rt.has_status and rt.kind != "Node":
            obj.pop("status", None)  # as upstream: status is written through the status subresource only
        apply_defaults(rt.kind, obj, self.ips)
        for admit in self.admission:
            admit(rt, obj)
        if validate is not None:
            validate(obj)
        if dry_run:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta["generation"] = 1
            return obj
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        if manager:
            fieldmanager.record_update(rt, None, obj, manager, None)
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self.objects[rt.key][(ns, name)] = obj
        self._emit(Event("ADDED", rt.key, copy.deepcopy(obj), None, rv))
        for cascade in list(self.cascades):
            cascade.created(self, rt, obj)
        return copy.deepcopy(obj)

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        obj: Obj,
        *,
        subresource: str | None = None,
        manager: str | None = None,
        dry_run: bool = False,
        validate: Callable[[Obj], None] | None = None,
        managed_fields: builtins.list[Obj] | None = None,
    ) -> Obj:
        """Replace an object (PUT). A `metadata.resourceVersion` in `obj` must match (409 otherwise).

        Writes to the main resource keep the stored status; writes to `status` keep everything else.
        `managed_fields` (from apply) replaces the field managers instead of recording an Update.
        """
        old = self._raw(rt, namespace, name)
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        want_rv = meta.get("resourceVersion")
        if want_rv and str(want_rv) != old["metadata"]["resourceVersion"]:
            raise errors.conflict(
                rt.group,
                rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
        else:
            for server_field in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if server_field in old["metadata"]:
                    meta[server_field] = old["metadata"][server_field]
                else:
                    meta.pop(server_field, None)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = old["metadata"]["namespace"]
            if rt.has_status and "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            if rt.kind == "Service" and isinstance(new.get("spec"), dict):
                new["spec"].setdefault("clusterIP", (old.get("spec") or {}).get("clusterIP"))
            apply_defaults(rt.kind, new, self.ips)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        if _spec_view(new) != _spec_view(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if validate is not None and subresource is None:
            validate(new)
        if managed_fields is not None:
            new["metadata"]["managedFields"] = managed_fields
        elif manager:
            new["metadata"]["managedFields"] = copy.deepcopy(old["metadata"].get("managedFields") or [])
            fieldmanager.record_update(rt, old, new, manager, subresource)
        else:
            new["metadata"]["managedFields"] = copy.deepcopy(old["metadata"].get("managedFields") or [])
        if not new["metadata"]["managedFields"]:
            new["metadata"].pop("managedFields")
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return copy.deepcopy(old)  # a no-op write does not bump the resourceVersion
        if dry_run:
            return new
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = str(rv)
        key = (old["metadata"].get("namespace", ""), name)
        self.objects[rt.key][key] = new
        self._emit(Event("MODIFIED", rt.key, copy.deepcopy(new), copy.deepcopy(old), rv))
        last_finalizer_gone = old["metadata"].get("finalizers") and not new["metadata"].get("finalizers")
        if new["metadata"].get("deletionTimestamp") and last_finalizer_gone:
            self._remove(rt, key)
        return copy.deepcopy(new)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        validate: Callable[[Obj], None] | None = None,
    ) -> Obj:
        """PATCH with `patch_type` one of `merge`, `json`, `strategic`, `apply`."""
        if patch_type == "apply":
            return self.apply(
                rt,
                namespace,
                name,
                body,
                manager=manager or "",
                force=force,
                dry_run=dry_run,
                validate=validate,
                subresource=subresource,
            )
        current = self.get(rt, namespace, name)
        if patch_type == "merge":
            result = patch.json_merge_patch(current, body)
        elif patch_type == "json":
            result = patch.json_patch(current, body)
        elif patch_type == "strategic":
            result = patch.strategic_merge(rt.kind, current, body)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the patch type {patch_type!r} is not supported")
        if not isinstance(result, dict):
            raise errors.bad_request("patch did not produce an object")
        result.setdefault("metadata", {})
        # A patch carrying a resourceVersion is a precondition; otherwise it applies to the current one.
        if not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")):
            result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.update(
            rt,
            namespace,
            name,
            result,
            subresource=subresource,
            manager=manager,
            dry_run=dry_run,
            validate=validate,
        )

    def apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        manager: str,
        force: bool = False,
        dry_run: bool = False,
        validate: Callable[[Obj], None] | None = None,
        subresource: str | None = None,
    ) -> Obj:
        """Server-side apply (`fieldmanager.apply`): merge `body` in, own its fields as `manager`, drop the
        fields this manager applied before and no longer does; a field another manager owns with a
        different value is a 409 conflict unless `force`. Creates the object when there is none."""
        body = fieldmanager.check_apply(rt, name, body, manager)
        try:
            current = self.get(rt, namespace, name)
        except ApiError as exc:
            if exc.code != 404 or subresource:
                raise
            created = fieldmanager.applied_new(rt, name, body, manager)
            return self.create(rt, created, namespace, dry_run=dry_run, validate=validate)
        merged, managed = fieldmanager.apply(rt, current, body, manager, subresource=subresource, force=force)
        return self.update(
            rt,
            namespace,
            name,
            merged,
            subresource=subresource,
            dry_run=dry_run,
            validate=validate,
            managed_fields=managed,
        )

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: Obj | None = None,
        dry_run: bool = False,
        grace_period: int | None = None,
    ) -> Obj:
        """Delete now (or mark with `deletionTimestamp` while finalizers remain, or while a graceful pod
        terminates); the cascades deal with what depends on the object (see `garbagecollector` for
        `propagation`)."""
        obj = self._raw(rt, namespace, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise errors.conflict(rt.group, rt.plural, name, "Precondition failed: UID in precondition")
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(
                rt.group, rt.plural, name, "Precondition failed: ResourceVersion in precondition"
            )
        if dry_run:
            return copy.deepcopy(obj)
        key = (obj["metadata"].get("namespace", ""), name)
        policy = propagation or "Background"
        spec = obj.get("spec") or {}
        if rt.kind == "Pod" and self.graceful_pods and spec.get("nodeName"):
            grace = (
                grace_period
                if grace_period is not None
                else int(spec.get("terminationGracePeriodSeconds", 30))
            )
            if grace > 0:
                return self._mark_deleted(rt, key, obj, grace)
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(obj)
            marked = copy.deepcopy(obj)
            marked["metadata"]["deletionTimestamp"] = now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            rv = self._next_rv()
            marked["metadata"]["resourceVersion"] = str(rv)
            self.objects[rt.key][key] = marked
            self._emit(Event("MODIFIED", rt.key, copy.deepcopy(marked), copy.deepcopy(obj), rv))
            self._cascade_deletion(rt, marked, policy, "marked")
            return copy.deepcopy(marked)
        self._cascade_deletion(rt, obj, policy, "removing")
        removed = self._remove(rt, key)
        self._cascade_deletion(rt, removed, policy, "removed")
        return removed

    def _cascade_deletion(self, rt: ResourceType, obj: Obj, propagation: str, moment: Moment) -> None:
        for cascade in list(self.cascades):
            cascade.deleting(self, rt, obj, propagation, moment)

    def _mark_deleted(self, rt: ResourceType, key: tuple[str, str], obj: Obj, grace: int) -> Obj:
        """Graceful deletion: stamp `deletionTimestamp` (now + grace) once, or shorten a longer grace."""
        current = obj["metadata"].get("deletionGracePeriodSeconds")
        if current is not None and current <= grace:
            return copy.deepcopy(obj)
        marked = copy.deepcopy(obj)
        marked["metadata"]["deletionTimestamp"] = after(grace)
        marked["metadata"]["deletionGracePeriodSeconds"] = grace
        rv = self._next_rv()
        marked["metadata"]["resourceVersion"] = str(rv)
        self.objects[rt.key][key] = marked
        self._emit(Event("MODIFIED", rt.key, copy.deepcopy(marked), copy.deepcopy(obj), rv))
        return copy.deepcopy(marked)

    def _remove(self, rt: ResourceType, key: tuple[str, str]) -> Obj:
        obj = self.objects[rt.key].pop(key)
        if rt.kind == "Service":
            self.ips.release((obj.get("spec") or {}).get("clusterIP"))
        rv = self._next_rv()
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(rv)
        self._emit(Event("DELETED", rt.key, copy.deepcopy(gone), copy.deepcopy(obj), rv))
        return gone

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        """Remove an object at once, as the end of a deletion: no preconditions, finalizers, grace period
        or cascade (what the namespace controller does to a deleted namespace's objects)."""
        self._raw(rt, namespace, name)
        return self._remove(rt, (self._ns(rt, namespace), name))

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation: str | None = None,
    ) -> Obj:
        listed = self.list(rt, namespace, label_selector, field_selector)
        for obj in listed["items"]:
            with contextlib.suppress(ApiError):
                self.delete(
                    rt, obj["metadata"].get("namespace"), obj["metadata"]["name"], propagation=propagation
                )
        return listed

    # ------------------------------------------------------------------ watch

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
    ) -> Watcher:
        """Subscribe. Without a resourceVersion (or "0") the current objects come first as ADDED; with one,
        the history after it is replayed; one older than the history gives a 410 Expired error event."""
        watcher = Watcher(
            rt,
            namespace if rt.namespaced else None,
            LabelSelector.parse(label_selector),
            FieldSelector.parse(field_selector),
        )
        if not resource_version or resource_version == "0":
            for obj in self.iter_objects(rt, namespace):
                if watcher._visible(obj):
                    watcher.push({"type": "ADDED", "object": copy.deepcopy(obj)})
        else:
            try:
                since = int(resource_version)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resourceVersion {resource_version!r}") from exc
            if since < self.floor:
                watcher.push(
                    {
                        "type": "ERROR",
                        "object": ApiError(
                            410, "Expired", f"too old resource version: {since} ({self.floor})"
                        ).status(),
                    }
                )
                watcher.close("expired")
                return watcher
            for event in self.history:
                if event.rv > since:
                    watcher.offer(event)
        self.watchers.append(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._drop(watcher)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> Obj:
        """Every object and the resourceVersion counter (what `persistence` writes)."""
        return {
            "resourceVersion": self.rv,
            "objects": {key: list(table.values()) for key, table in self.objects.items() if table},
        }

    def restore(self, snapshot: Obj) -> None:
        """Take the objects and resourceVersion of `snapshot` (a new store, before anything watches it)."""
        self.rv = int(snapshot.get("resourceVersion", 0))
        for key, items in (snapshot.get("objects") or {}).items():
            try:
                rt = resources.by_key(key)
            except KeyError:
                continue
            for obj in items:
                meta = obj["metadata"]
                self.objects[rt.key][(meta.get("namespace", ""), meta["name"])] = obj
                if rt.kind == "Service":
                    ip = (obj.get("spec") or {}).get("clusterIP")
                    if ip and ip != "None":
                        self.ips.used.add(ip)
