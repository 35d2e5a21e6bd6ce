"""The resource metrics API (`metrics.k8s.io/v1beta1`, what metrics-server serves) from the node agent's
measurements, so that `kubectl top pod` and `kubectl top node` work against the local cluster.

PodMetrics are the agent's samples of the pods the store still has (with the pods' labels, for label
selectors); a NodeMetrics is the sum of the usage of the pods on that node (a process kubelet has no
system overhead of its own to add). Read-only: get and list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from kube.quantity import format_cpu, format_memory, memory_bytes, parse_quantity
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.selectors import LabelSelector
from sim.k8s.store import Obj, Store, now

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
PODS = resources.by_key("pods")
NODES = resources.by_key("nodes")
NANO = {"n": Decimal(10) ** -9, "u": Decimal(10) ** -6}

#: The pods' usage: PodMetrics items (metadata.name/namespace, timestamp, window, containers[].usage).
Samples = Callable[[], Iterable[Mapping[str, Any]]]


def api_group() -> Obj:
    gv = {"groupVersion": API_VERSION, "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [gv], "preferredVersion": gv}


def resource_list() -> Obj:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            {
                "name": "pods",
                "singularName": "",
                "namespaced": True,
                "kind": "PodMetrics",
                "verbs": ["get", "list"],
            },
            {
                "name": "nodes",
                "singularName": "",
                "namespaced": False,
                "kind": "NodeMetrics",
                "verbs": ["get", "list"],
            },
        ],
    }


def _cores(value: str) -> Decimal:
    if value[-1:] in NANO:
        return parse_quantity(value[:-1]) * NANO[value[-1]]
    return parse_quantity(value)


def pod_metrics(store: Store, samples: Samples) -> list[Obj]:
    """PodMetrics of every pod the store has, from the latest samples."""
    out = []
    for sample in samples():
        meta = sample.get("metadata") or {}
        try:
            pod = store.get(PODS, meta.get("namespace"), meta.get("name", ""))
        except ApiError:
            continue
        pod_meta = pod["metadata"]
        out.append(
            {
                "kind": "PodMetrics",
                "apiVersion": API_VERSION,
                "metadata": {
                    "name": pod_meta["name"],
                    "namespace": pod_meta["namespace"],
                    "labels": pod_meta.get("labels") or {},
                    "creationTimestamp": now(),
                },
                "timestamp": sample.get("timestamp") or now(),
                "window": sample.get("window") or "1s",
                "containers": list(sample.get("containers") or []),
                "_node": (pod.get("spec") or {}).get("nodeName"),
            }
        )
    return out


def node_metrics(store: Store, pods: list[Obj]) -> list[Obj]:
    out = []
    for node in store.iter_objects(NODES):
        name = node["metadata"]["name"]
        cpu, memory = Decimal(0), 0
        for pod in pods:
            if pod["_node"] == name:
                for container in pod["containers"]:
                    usage = container.get("usage") or {}
                    cpu += _cores(usage.get("cpu", "0"))
                    memory += memory_bytes(usage.get("memory", "0"))
        out.append(
            {
                "kind": "NodeMetrics",
                "apiVersion": API_VERSION,
                "metadata": {
                    "name": name,
                    "labels": node["metadata"].get("labels") or {},
                    "creationTimestamp": now(),
                },
                "timestamp": now(),
                "window": "1s",
                "usage": {"cpu": format_cpu(float(cpu)), "memory": format_memory(memory)},
            }
        )
    return out


def serve(store: Store, samples: Samples, rest: list[str], query: Mapping[str, str]) -> Obj:
    """Answer GET `/apis/metrics.k8s.io/v1beta1/<rest>`: a list or one item (404 when there is none)."""
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in ("pods", "nodes") or len(rest) > 2 or (rest[0] == "nodes" and namespace):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    pods = pod_metrics(store, samples)
    items = node_metrics(store, pods) if rest[0] == "nodes" else pods
    if namespace is not None:
        items = [i for i in items if i["metadata"].get("namespace") == namespace]
    selector = LabelSelector.parse(query.get("labelSelector"))
    items = [{k: v for k, v in i.items() if k != "_node"} for i in items if selector.matches(i)]
    if len(rest) == 2:
        found = next((i for i in items if i["metadata"]["name"] == rest[1]), None)
        if found is None:
            kind = "podmetrics" if rest[0] == "pods" else "nodemetrics"
            raise ApiError(
                404,
                "NotFound",
                f'{kind}.{GROUP} "{rest[1]}" not found',
                name=rest[1],
                group=GROUP,
                kind=rest[0],
            )
        return found
    kind = "PodMetricsList" if rest[0] == "pods" else "NodeMetricsList"
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}


def answer(store: Store, samples: Samples, method: str, path: str, query: Mapping[str, str]) -> Obj:
    """Answer `method` on `path` (`/apis/metrics.k8s.io[/v1beta1[/...]]`): the group, its resources, a
    list or an item; read-only."""
    rest = path.strip("/").split("/")[2:]
    if method != "GET":
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {GROUP}")
    if not rest:
        return api_group()
    if rest[0] != VERSION:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if len(rest) == 1:
        return resource_list()
    return serve(store, samples, rest[1:], query)
