"""The local Kubernetes as one: the API server's store and wire, the controllers, and the node agents
(process kubelets) of its nodes, all in one asyncio loop.

`LocalCluster.app` is the ASGI app to serve; its lifespan starts the node agents first (so nodes exist
when the controllers make their first pass) and stops them last (so every pod process is gone before the
server exits). The API server imports nothing of the kubelet: its logs, exec and port-forward
(`sim.kubelet.streams`) and its usage samples are handed to it here, through the small protocols it
declares; nor of the ALB: its pod readiness gate injector is registered here as the store's admission
hook, when the ALB data plane that measures target health is known (`alb_admin_url`). The kubelet
imports nothing of the image stand-ins: the table's resolver (`sim.standins.table.StandIns`) is handed
to it here. `python -m sim.cluster` (`__main__`) serves one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from containers.nodestore import ImageStore
from sim.alb.controller import AlbController
from sim.alb.readiness import ReadinessGateInjector
from sim.controllers import Controller
from sim.controllers.manager import Timings, all_controllers
from sim.k8s.app import KubeApp, placeholder_log
from sim.k8s.defaults import DEFAULT_SERVICE_CIDR, ClusterIPs
from sim.k8s.events import record_event
from sim.k8s.store import Store
from sim.kubelet import KubeletConfig
from sim.kubelet.agent import NodeAgent
from sim.kubelet.spec import PodSpec
from sim.kubelet.streams import NodeStreams
from sim.network.node import NodeNetwork
from sim.standins.table import StandIns

DEFAULT_POD_CIDR = "127.1.0.0/16"


def split_addresses(cidr: str) -> tuple[str, str]:
    """A cluster's address range (inside 127.0.0.0/8) as its pod CIDR and Service CIDR: two halves."""
    network = ipaddress.ip_network(cidr)
    if not network.subnet_of(ipaddress.ip_network("127.0.0.0/8")) or network.prefixlen > 24:  # type: ignore[arg-type]
        raise ValueError(f"{cidr}: a cluster's addresses must be a /24 or larger inside 127.0.0.0/8")
    pods, services = network.subnets()
    return str(pods), str(services)


@dataclass(frozen=True)
class ClusterConfig:
    """What a local cluster is made of; a cluster with no nodes is an API server with its controllers."""

    nodes: Sequence[str] = ()
    image_store: Path | None = None
    kubelet_dir: Path | None = None
    data_dir: Path | None = None
    pod_cidr: str = DEFAULT_POD_CIDR
    capacity: Mapping[str, str] = field(default_factory=dict)
    service_cidr: str = DEFAULT_SERVICE_CIDR
    #: the HPA sync period, node grace period and pod eviction timeout
    timings: Timings = field(default_factory=Timings)
    #: run a node agent (and the cluster network) even with no `nodes`: nodes come and go at runtime
    #: (`LocalCluster.agent.add_node`, `sim.eks.drain.remove_node`), as an EKS cluster's node groups scale
    elastic_nodes: bool = False
    #: the AWS emulator this cluster's cloud controllers (the ALB controller) talk to; None: no cloud
    aws_endpoint: str | None = None
    cluster_name: str = "local"
    #: where this cluster's API is served, for what runs in it and talks to it (the Prometheus stand-in)
    api_url: str | None = None
    #: the ALB data plane's admin URL (`python -m sim.alb --admin-port`): the ALB controller reads the
    #: targets' health there for pod readiness gates; None: no readiness gates
    alb_admin_url: str | None = None

    def __post_init__(self) -> None:
        if (self.nodes or self.elastic_nodes) and (self.image_store is None or self.kubelet_dir is None):
            raise ValueError("a cluster with nodes needs an image store and a kubelet directory")
        services, loopback = ipaddress.ip_network(self.service_cidr), ipaddress.ip_network("127.0.0.0/8")
        if not services.subnet_of(loopback):  # type: ignore[arg-type]
            raise ValueError(f"service CIDR {self.service_cidr} is not inside 127.0.0.0/8")
        if services.overlaps(ipaddress.ip_network(self.pod_cidr)):
            raise ValueError(f"service CIDR {self.service_cidr} overlaps pod CIDR {self.pod_cidr}")


def kubelet_event(store: Store, pod: PodSpec, kind: str, reason: str, message: str) -> None:
    """An Event about `pod` from the kubelet of its node, as `kubectl describe pod` shows them."""
    reference = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
    }
    record_event(store, reference, kind, reason, message, "kubelet", pod.node_name)


class LocalCluster:
    def __init__(self, config: ClusterConfig, kubelet: KubeletConfig | None = None) -> None:
        # a kubelet confirms pod deletions, so graceful pod deletion is on when there are nodes
        runs_nodes = bool(config.nodes) or config.elastic_nodes
        self.store = Store(data_dir=config.data_dir, graceful_pods=runs_nodes)
        self.store.ips = ClusterIPs(config.service_cidr, self.store.ips.used)
        self.agent: NodeAgent | None = None
        # the service proxy and DNS serve pods, so they run where there are nodes (kube-proxy's place)
        self.network: NodeNetwork | None = None
        if runs_nodes:
            assert config.image_store is not None
            assert config.kubelet_dir is not None
            self.network = NodeNetwork(self.store, config.kubelet_dir / "network")
            kubelet = kubelet or KubeletConfig(ImageStore(config.image_store), config.kubelet_dir / "logs")
            kubelet = replace(
                kubelet,
                service_env=self.network.service_env,
                resolver_env=self.network.resolver_env,
                standins=StandIns(kubelet.images.root / "standins", config.aws_endpoint, config.api_url),
                events=partial(kubelet_event, self.store),
            )
            self.agent = NodeAgent(
                self.store, config.nodes, kubelet, pod_cidr=config.pod_cidr, capacity=config.capacity
            )
        metrics = self.agent.metrics if self.agent is not None else None
        streams = NodeStreams(self.agent) if self.agent is not None else None
        self.controllers: list[Controller] = all_controllers(self.store, metrics, config.timings)
        if self.network is not None:
            self.controllers += self.network.controllers()
        if config.aws_endpoint is not None:
            alb = AlbController(self.store, config.aws_endpoint, config.cluster_name, config.alb_admin_url)
            self.controllers.append(alb)
            if config.alb_admin_url is not None:
                self.store.admission.append(ReadinessGateInjector(self.store, config.cluster_name))
        self.app = KubeApp(
            self.store,
            log_source=streams.read_log if streams is not None else placeholder_log,
            streams=streams,
            metrics_source=metrics,
            on_startup=[self.start],
            on_shutdown=[self.stop],
        )

    async def start(self) -> None:
        if self.agent is not None:
            await self.agent.start()
        for controller in self.controllers:
            controller.start()

    async def stop(self) -> None:
        for controller in reversed(self.controllers):
            await controller.stop()
        if self.agent is not None:
            await self.agent.stop()
