"""The cluster's DNS records, kept as a hosts-style file for the pods' resolver shim (`shim/`).

Each Service is `<svc>.<ns>.svc.cluster.local`: its ClusterIP, or, for a headless Service, the
addresses of its ready endpoints. The file is rewritten (atomically: a temporary file renamed over it)
whenever the records change, so a reader sees the old records or the new, never half of them. Not
served: ExternalName Services (a CNAME has no place in a hosts file), SRV records, pod A records.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sim.controllers.base import Controller
from sim.controllers.endpoints import SERVICE_NAME_LABEL
from sim.k8s import resources
from sim.k8s.store import Obj, Store

log = logging.getLogger(__name__)

SERVICES = resources.by_key("services")
SLICES = resources.by_key("endpointslices.discovery.k8s.io")
CLUSTER_DOMAIN = "cluster.local"


def service_fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def search_domains(namespace: str) -> list[str]:
    """A pod's resolv.conf `search` line under `dnsPolicy: ClusterFirst`."""
    return [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]


def records(services: Iterable[Obj], slices: Iterable[Obj]) -> dict[str, list[str]]:
    """Fully qualified name -> addresses for every Service that has any."""
    ready: dict[tuple[str, str], set[str]] = {}
    for slice_obj in slices:
        meta = slice_obj["metadata"]
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        for endpoint in slice_obj.get("endpoints") or []:
            if owner and (endpoint.get("conditions") or {}).get("ready") is not False:
                ready.setdefault((meta["namespace"], owner), set()).update(endpoint.get("addresses") or [])
    out: dict[str, list[str]] = {}
    for service in services:
        meta, spec = service["metadata"], service.get("spec") or {}
        ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not ip:
            continue
        key = (meta["namespace"], meta["name"])
        addresses = sorted(ready.get(key, ())) if ip == "None" else [ip]
        if addresses:
            out[service_fqdn(meta["name"], meta["namespace"])] = addresses
    return out


def render_hosts(table: dict[str, list[str]]) -> str:
    lines = ["# cluster Services, written by the local cluster's DNS controller"]
    lines += [f"{address} {name}" for name in sorted(table) for address in table[name]]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ClusterDns(Controller):
    """Keeps the hosts file at `hosts_path` equal to the cluster's Service records."""

    name = "cluster-dns"
    watches = frozenset({SERVICES.key, SLICES.key})

    def __init__(self, store: Store, hosts_path: Path) -> None:
        super().__init__(store)
        self.hosts_path = hosts_path
        self._written: str | None = None

    def reconcile(self) -> None:
        text = render_hosts(records(self.store.iter_objects(SERVICES), self.store.iter_objects(SLICES)))
        if text != self._written:
            write_atomically(self.hosts_path, text)
            self._written = text
