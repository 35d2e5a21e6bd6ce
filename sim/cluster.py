"""The local Kubernetes as one: the API server's store and wire, the controllers, and the node agents
(process kubelets) of its nodes, all in one asyncio loop.

`LocalCluster.app` is the ASGI app to serve; its lifespan starts the node agents first (so nodes exist
when the controllers make their first pass) and stops them last (so every pod process is gone before the
server exits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sim.controllers import Controller, all_controllers
from sim.images import ImageStore
from sim.k8s.app import KubeApp, placeholder_log
from sim.k8s.store import Store
from sim.kubelet import KubeletConfig
from sim.kubelet.agent import NodeAgent

DEFAULT_POD_CIDR = "127.1.0.0/16"


@dataclass(frozen=True)
class ClusterConfig:
    """What a local cluster is made of; a cluster with no nodes is an API server with its controllers."""

    nodes: Sequence[str] = ()
    image_store: Path | None = None
    kubelet_dir: Path | None = None
    data_dir: Path | None = None
    pod_cidr: str = DEFAULT_POD_CIDR
    capacity: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes and (self.image_store is None or self.kubelet_dir is None):
            raise ValueError("a cluster with nodes needs an image store and a kubelet directory")


class LocalCluster:
    def __init__(self, config: ClusterConfig, kubelet: KubeletConfig | None = None) -> None:
        # a kubelet confirms pod deletions, so graceful pod deletion is on when there are nodes
        self.store = Store(data_dir=config.data_dir, graceful_pods=bool(config.nodes))
        self.agent: NodeAgent | None = None
        if config.nodes:
            assert config.image_store is not None
            assert config.kubelet_dir is not None
            kubelet = kubelet or KubeletConfig(ImageStore(config.image_store), config.kubelet_dir / "logs")
            self.agent = NodeAgent(
                self.store, config.nodes, kubelet, pod_cidr=config.pod_cidr, capacity=config.capacity
            )
        self.controllers: list[Controller] = all_controllers(self.store)
        self.app = KubeApp(
            self.store,
            log_source=self.agent.read_log if self.agent is not None else placeholder_log,
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
