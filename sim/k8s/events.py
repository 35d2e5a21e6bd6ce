"""Recording core/v1 Events about an object, as the components that act on it report them.

Like client-go's event correlator, a repeat of the same event (same object, type, reason, message and
source) is not a new Event: the existing one's `count` and `lastTimestamp` go up, which is what `kubectl
describe` shows as `(x12 over 2m)`. A readiness probe failing every second makes one Event, not thousands.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.store import Store, now

log = logging.getLogger(__name__)

EVENTS = resources.by_key("events")


def record_event(
    store: Store,
    obj: Mapping[str, Any],
    kind: str,
    reason: str,
    message: str,
    component: str,
    host: str | None = None,
) -> None:
    """An Event of type `kind` (Normal or Warning) about `obj`, in its namespace (default for cluster
    objects), from `component` (on node `host`, for a kubelet); a failure to record one is logged, never
    raised: events are best effort upstream too."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    identity = "\0".join((meta.get("uid", "") or meta["name"], kind, reason, message, component, host or ""))
    name = f"{meta['name']}.{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    stamp = now()
    try:
        existing = store.get(EVENTS, namespace, name)
    except ApiError:
        existing = None
    try:
        if existing is not None:
            existing["count"] = int(existing.get("count") or 1) + 1
            existing["lastTimestamp"] = stamp
            store.update(EVENTS, namespace, name, existing, manager=component)
            return
        source = {"component": component, **({"host": host} if host else {})}
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "kind": obj.get("kind", ""),
                "apiVersion": obj.get("apiVersion", ""),
                "namespace": meta.get("namespace", ""),
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": source,
            "reportingComponent": component,
            "reportingInstance": host or "",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        store.create(EVENTS, event, namespace, manager=component)
    except ApiError as err:
        log.debug("event for %s: %s", meta["name"], err)
