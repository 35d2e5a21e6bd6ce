"""Services and pods written straight into a `Store` as the API server would hold them: for the tests of
the Endpoints controller (`tests/controllers/test_endpoints.py`) and of the network."""

from __future__ import annotations

from typing import Any

from sim.k8s import resources
from sim.k8s.store import Obj, Store

PODS = resources.by_key("pods")
SERVICES = resources.by_key("services")
ENDPOINTS = resources.by_key("endpoints")
SLICES = resources.by_key("endpointslices.discovery.k8s.io")


def add_pod(
    store: Store,
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    namespace: str = "default",
    node: str = "node-1",
) -> Obj:
    """A pod bound to `node`, running on `ip` (None: no address yet), Ready or not."""
    container = {"name": "app", "image": "app:1", "ports": ports or [{"name": "http", "containerPort": 8080}]}
    store.create(
        PODS,
        {
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "payment"}},
            "spec": {"nodeName": node, "containers": [container]},
        },
        namespace,
    )
    return set_ready(store, name, ready, ip=ip, namespace=namespace)


def set_ready(
    store: Store, name: str, ready: bool, *, ip: str | None = None, namespace: str = "default"
) -> Obj:
    pod = store.get(PODS, namespace, name)
    status = pod.get("status") or {}
    status.update(
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    )
    if ip is not None:
        status["podIP"] = ip
    pod["status"] = status
    return store.update(PODS, namespace, name, pod, subresource="status")


def add_service(
    store: Store,
    name: str = "payment",
    ports: list[dict[str, Any]] | None = None,
    selector: dict[str, str] | None = None,
    namespace: str = "default",
    **spec: Any,
) -> Obj:
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": selector or {"app": "payment"},
            "ports": ports or [{"name": "http", "port": 80, "targetPort": "http"}],
            **spec,
        },
    }
    return store.create(SERVICES, body, namespace)


def slices_of(store: Store, service: str, namespace: str = "default") -> list[Obj]:
    return [
        s
        for s in store.iter_objects(SLICES, namespace)
        if s["metadata"]["labels"].get("kubernetes.io/service-name") == service
    ]
