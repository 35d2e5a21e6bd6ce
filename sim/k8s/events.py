"""Recording core/v1 Events about an object, as the components that act on it report them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.store import Store, now

log = logging.getLogger(__name__)

EVENTS = resources.by_key("events")


def record_event(
    store: Store, obj: Mapping[str, Any], kind: str, reason: str, message: str, component: str
) -> None:
    """An Event of type `kind` (Normal or Warning) about `obj`, in its namespace (default for cluster
    objects); a failure to record one is logged, never raised: events are best effort upstream too."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    stamp = now()
    event = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
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
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        store.create(EVENTS, event, namespace, manager=component)
    except ApiError as err:
        log.debug("event for %s: %s", meta["name"], err)
