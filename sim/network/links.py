"""The Docker-link style variables a kubelet gives a container for the Services of its namespace that
exist when it starts (`enableServiceLinks`, default true): `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT`,
`<SVC>_SERVICE_PORT_<PORTNAME>`, `<SVC>_PORT` and `<SVC>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`.

The kubelet starts containers off the event loop, so it reads a snapshot (by namespace) that
`ServiceLinks` rebuilds in the loop whenever a Service changes, never the store itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sim.controllers.base import Controller
from sim.k8s import resources
from sim.k8s.store import Obj, Store

SERVICES = resources.by_key("services")


def _variable_name(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


def service_variables(service: Mapping[str, Any]) -> dict[str, str]:
    """The variables of one Service (none for a headless or ExternalName Service, or one without ports)."""
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP")
    ports = spec.get("ports") or []
    if not ip or ip == "None" or spec.get("type") == "ExternalName" or not ports:
        return {}
    prefix = _variable_name(service["metadata"]["name"])
    first = ports[0]
    env = {
        f"{prefix}_SERVICE_HOST": ip,
        f"{prefix}_SERVICE_PORT": str(first["port"]),
        f"{prefix}_PORT": f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}",
    }
    for port in ports:
        number, protocol = str(port["port"]), port.get("protocol", "TCP")
        if port.get("name"):
            env[f"{prefix}_SERVICE_PORT_{_variable_name(port['name'])}"] = number
        link = f"{prefix}_PORT_{number}_{protocol.upper()}"
        env[link] = f"{protocol.lower()}://{ip}:{number}"
        env[f"{link}_PROTO"] = protocol.lower()
        env[f"{link}_PORT"] = number
        env[f"{link}_ADDR"] = ip
    return env


def namespace_variables(services: Iterable[Obj]) -> dict[str, dict[str, str]]:
    """Every namespace's service variables."""
    out: dict[str, dict[str, str]] = {}
    for service in services:
        out.setdefault(service["metadata"]["namespace"], {}).update(service_variables(service))
    return out


class ServiceLinks(Controller):
    """Holds `by_namespace`, the service variables of each namespace, current with the store."""

    name = "service-links"
    watches = frozenset({SERVICES.key})

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.by_namespace: Mapping[str, Mapping[str, str]] = {}

    def reconcile(self) -> None:
        self.by_namespace = namespace_variables(self.store.iter_objects(SERVICES))

    def variables(self, namespace: str) -> dict[str, str]:
        return dict(self.by_namespace.get(namespace, {}))
