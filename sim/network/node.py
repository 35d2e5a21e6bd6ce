"""What a node gives its pods from the cluster network: the service proxy, the DNS records and, for each
container, the variables that point it at them (the resolver shim on PYTHONPATH, its hosts file and
search domains, and the service links)."""

from __future__ import annotations

from pathlib import Path

from sim.controllers.base import Controller
from sim.k8s.store import Store
from sim.kubelet.spec import PodSpec
from sim.network.dns import ClusterDns, search_domains
from sim.network.links import ServiceLinks
from sim.network.proxy import ServiceProxy
from sim.network.shim import cluster_resolver

SHIM_DIR = Path(__file__).resolve().parent / "shim"


class NodeNetwork:
    """The proxy, DNS and service-link controllers of a cluster with nodes; `directory` holds the hosts
    file."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.proxy = ServiceProxy(store)
        self.dns = ClusterDns(store, directory / "hosts")
        self.links = ServiceLinks(store)

    def controllers(self) -> list[Controller]:
        return [self.links, self.dns, self.proxy]

    def service_env(self, pod: PodSpec) -> dict[str, str]:
        """The service links of the pod's namespace (none when the pod turned them off)."""
        return self.links.variables(pod.namespace) if pod.service_links else {}

    def resolver_env(self, pod: PodSpec) -> dict[str, str]:
        """Host paths (not the image's) that load the resolver shim with the pod's search domains."""
        return {
            "PYTHONPATH": str(SHIM_DIR),
            cluster_resolver.HOSTS_VARIABLE: str(self.dns.hosts_path),
            cluster_resolver.SEARCH_VARIABLE: " ".join(search_domains(pod.namespace)),
        }
