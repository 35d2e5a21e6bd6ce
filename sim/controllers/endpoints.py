"""The Endpoints and EndpointSlice controller: for each Service with a selector, the pods it selects (what
the service proxy, the cluster DNS in `sim.network` and the ALB controller read).

A pod counts when it is in the Service's namespace, matches the selector, has a `podIP` and has not
finished (Succeeded/Failed). In the Endpoints object (named as the Service) a Ready pod is an address, an
unready one a `notReadyAddresses` entry, and a pod being deleted is left out (as upstream, unless the
Service sets `publishNotReadyAddresses`). In the EndpointSlices (discovery.k8s.io/v1, owned by the Service
so they go with it) every such pod is an endpoint with `conditions.ready/serving/terminating`.

Ports come from each Service port's `targetPort`: a number, or the name of a container port, which may
differ from pod to pod; pods are grouped by the ports they resolve to (one Endpoints subset, one slice per
group). A pod lacking a named port is left out of that port. Objects are rewritten only when their
content changes, so a pass that finds nothing new writes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from sim.controllers.base import Controller
from sim.controllers.workloads import pod_ready
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.store import Event, Obj

log = logging.getLogger(__name__)

PODS = resources.by_key("pods")
SERVICES = resources.by_key("services")
ENDPOINTS = resources.by_key("endpoints")
SLICES = resources.by_key("endpointslices.discovery.k8s.io")
ENDPOINTS_MANAGER = "endpoint-controller"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
MANAGED_BY_ENDPOINTS = "endpoints.kubernetes.io/managed-by"
MANAGED_BY_SLICE = "endpointslice.kubernetes.io/managed-by"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TERMINAL = ("Succeeded", "Failed")

Port = tuple[str, int, str]  # (service port name, resolved port, protocol)


def selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether the Service's selector picks `pod` (same namespace; an empty selector picks nothing)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    same_ns = pod["metadata"].get("namespace") == service["metadata"].get("namespace")
    return bool(selector) and same_ns and all(labels.get(k) == v for k, v in selector.items())


def _container_ports(pod: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """The pod's named container ports: (name, protocol) -> number."""
    named: dict[tuple[str, str], int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name"):
                named.setdefault((port["name"], port.get("protocol", "TCP")), int(port["containerPort"]))
    return named


def resolve_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[Port, ...]:
    """The Service's ports as `pod` serves them (`targetPort` by number or by container port name)."""
    named = _container_ports(pod)
    out: list[Port] = []
    for port in (service.get("spec") or {}).get("ports") or []:
        protocol = port.get("protocol", "TCP")
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            if (target, protocol) not in named:
                continue
            number = named[(target, protocol)]
        else:
            number = int(target)
        out.append((str(port.get("name") or ""), number, protocol))
    return tuple(sorted(out))


def _port_list(ports: tuple[Port, ...]) -> list[dict[str, Any]]:
    return [
        {**({"name": name} if name else {}), "port": number, "protocol": proto}
        for name, number, proto in ports
    ]


def _address(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    address: dict[str, Any] = {
        "ip": pod["status"]["podIP"],
        "targetRef": {
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
    }
    if node := (pod.get("spec") or {}).get("nodeName"):
        address["nodeName"] = node
    return address


def _candidates(service: Mapping[str, Any], pods: list[Obj]) -> list[Obj]:
    """The pods that back `service`, by IP order."""
    picked = [
        p
        for p in pods
        if selects(service, p)
        and (p.get("status") or {}).get("podIP")
        and (p.get("status") or {}).get("phase") not in TERMINAL
    ]
    return sorted(picked, key=lambda p: (p["status"]["podIP"], p["metadata"]["name"]))


def desired_subsets(service: Mapping[str, Any], pods: list[Obj]) -> list[dict[str, Any]]:
    """The `subsets` of the Service's Endpoints object."""
    publish_all = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple[Port, ...], dict[str, list[dict[str, Any]]]] = {}
    for pod in _candidates(service, pods):
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        if terminating and not publish_all:
            continue
        ports = resolve_ports(service, pod)
        if not ports:
            continue
        group = groups.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
        ready = publish_all or pod_ready(pod)
        group["addresses" if ready else "notReadyAddresses"].append(_address(pod))
    subsets = []
    for ports, group in sorted(groups.items()):
        subset: dict[str, Any] = {key: value for key, value in group.items() if value}
        subset["ports"] = _port_list(ports)
        subsets.append(subset)
    return subsets


def desired_slices(
    service: Mapping[str, Any], pods: list[Obj]
) -> dict[tuple[Port, ...], list[dict[str, Any]]]:
    """The endpoints of the Service's EndpointSlices, by the ports they serve (no pod: one empty slice)."""
    publish_all = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple[Port, ...], list[dict[str, Any]]] = {}
    for pod in _candidates(service, pods):
        ports = resolve_ports(service, pod)
        if not ports:
            continue
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        serving = publish_all or pod_ready(pod)
        address = _address(pod)
        endpoint: dict[str, Any] = {
            "addresses": [address["ip"]],
            "conditions": {
                "ready": serving and not terminating,
                "serving": serving,
                "terminating": terminating,
            },
            "targetRef": address["targetRef"],
        }
        if "nodeName" in address:
            endpoint["nodeName"] = address["nodeName"]
        groups.setdefault(ports, []).append(endpoint)
    return groups or {(): []}


def slice_name(service_name: str, ports: tuple[Port, ...]) -> str:
    """A stable name for the slice of `service_name` serving `ports`."""
    digest = hashlib.sha256(json.dumps(ports).encode()).hexdigest()[:5]
    return f"{service_name[:57]}-{digest}"


def _owner(service: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "name": service["metadata"]["name"],
        "uid": service["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class EndpointsController(Controller):
    """Keeps Endpoints and EndpointSlices in step with Services and their pods."""

    name = "endpoint-controller"
    watches = frozenset({PODS.key, SERVICES.key, ENDPOINTS.key, SLICES.key})

    def wants(self, event: Event) -> bool:
        if event.key in (ENDPOINTS.key, SLICES.key):
            # someone else changed or removed what this controller writes
            labels = event.obj["metadata"].get("labels") or {}
            return MANAGED_BY_ENDPOINTS in labels or MANAGED_BY_SLICE in labels
        return event.key in self.watches

    def reconcile(self) -> None:
        pods = list(self.store.iter_objects(PODS))
        services = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s
            for s in self.store.iter_objects(SERVICES)
            if (s.get("spec") or {}).get("selector")
        }
        for service in services.values():
            try:
                self._sync_endpoints(service, pods)
                self._sync_slices(service, pods)
            except ApiError as err:  # changed meanwhile: the next pass sees it
                log.debug("endpoints of %s: %s", service["metadata"]["name"], err)
        self._remove_orphans(services)

    def _labels(self, service: Mapping[str, Any]) -> dict[str, str]:
        return dict(service["metadata"].get("labels") or {})

    def _sync_endpoints(self, service: Obj, pods: list[Obj]) -> None:
        meta = service["metadata"]
        ns, name = meta["namespace"], meta["name"]
        labels = {**self._labels(service), MANAGED_BY_ENDPOINTS: ENDPOINTS_MANAGER}
        subsets = desired_subsets(service, pods)
        try:
            current = self.store.get(ENDPOINTS, ns, name)
        except ApiError:
            body: Obj = {"metadata": {"name": name, "namespace": ns, "labels": labels}}
            if subsets:
                body["subsets"] = subsets
            self.store.create(ENDPOINTS, body, ns, manager=ENDPOINTS_MANAGER)
            return
        if (current.get("subsets") or []) == subsets and (current["metadata"].get("labels") or {}) == labels:
            return
        current["metadata"]["labels"] = labels
        current.pop("subsets", None)
        if subsets:
            current["subsets"] = subsets
        self.store.update(ENDPOINTS, ns, name, current, manager=ENDPOINTS_MANAGER)

    def _sync_slices(self, service: Obj, pods: list[Obj]) -> None:
        meta = service["metadata"]
        ns, name = meta["namespace"], meta["name"]
        labels = {**self._labels(service), SERVICE_NAME_LABEL: name, MANAGED_BY_SLICE: SLICE_MANAGER}
        wanted = {
            slice_name(name, ports): (ports, eps) for ports, eps in desired_slices(service, pods).items()
        }
        existing = {
            s["metadata"]["name"]: s
            for s in self.store.iter_objects(SLICES, ns)
            if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
            and (s["metadata"].get("labels") or {}).get(MANAGED_BY_SLICE) == SLICE_MANAGER
        }
        for slice_obj_name, (ports, endpoints) in wanted.items():
            body: Obj = {
                "metadata": {
                    "name": slice_obj_name,
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [_owner(service)],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": _port_list(ports),
            }
            current = existing.get(slice_obj_name)
            if current is None:
                self.store.create(SLICES, body, ns, manager=SLICE_MANAGER)
                continue
            same = all(current.get(k) == body[k] for k in ("addressType", "endpoints", "ports")) and all(
                current["metadata"].get(k) == body["metadata"][k] for k in ("labels", "ownerReferences")
            )
            if not same:
                current = copy.deepcopy(current)  # iter_objects hands out the stored objects
                current.update({k: body[k] for k in ("addressType", "endpoints", "ports")})
                current["metadata"].update({k: body["metadata"][k] for k in ("labels", "ownerReferences")})
                self.store.update(SLICES, ns, slice_obj_name, current, manager=SLICE_MANAGER)
        for stale in set(existing) - set(wanted):
            self.store.delete(SLICES, ns, stale)

    def _remove_orphans(self, services: Mapping[tuple[str, str], Obj]) -> None:
        """Endpoints and slices this controller wrote whose Service is gone (or lost its selector)."""
        for rt, managed_by in ((ENDPOINTS, MANAGED_BY_ENDPOINTS), (SLICES, MANAGED_BY_SLICE)):
            for obj in list(self.store.iter_objects(rt)):
                meta = obj["metadata"]
                labels = meta.get("labels") or {}
                service = meta["name"] if rt is ENDPOINTS else labels.get(SERVICE_NAME_LABEL, "")
                if managed_by not in labels or (meta["namespace"], service) in services:
                    continue
                try:
                    self.store.delete(rt, meta["namespace"], meta["name"])
                except ApiError as err:
                    log.debug("removing %s %s: %s", rt.kind, meta["name"], err)
