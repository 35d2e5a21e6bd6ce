"""One EKS cluster made real: a `LocalCluster` (API server, controllers, node agent, network) served by
hypercorn on its own loopback port in the binding's loop, its kubeconfig, and its Nodes kept equal to the
plan of its node groups (where a group shrinks, the nodes the cluster autoscaler is removing go first).

The cluster starts with no nodes; `apply(plan)` (in the background: `follow(plan)`, so that a slow drain
holds up no other cluster) adds the planned nodes that are missing and removes the surplus: all surplus
nodes are cordoned first (so evicted pods do not land on a node about to go), then each is drained,
terminated and deleted (`sim.eks.drain`), newest first. `stop()` stops the server, which stops every pod
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.cluster import ClusterConfig, LocalCluster
from sim.eks.drain import NODES, cordon, remove_node
from sim.eks.emulator import EksCluster
from sim.eks.nodes import NodeSpec, Plan
from sim.k8s.kubeconfig import write_kubeconfig
from sim.kubelet.agent import NodeAgent
from sim.serving import serve
from sim.supervisor.process import free_port

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_SECONDS = 1.0
#: the taint the cluster autoscaler puts on a node it removes
TO_BE_DELETED = "ToBeDeletedByClusterAutoscaler"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Addresses:
    """A cluster's share of 127/8: its pod CIDR and its Service CIDR."""

    pod_cidr: str
    service_cidr: str


class HostedCluster:
    def __init__(
        self,
        eks: EksCluster,
        addresses: Addresses,
        *,
        aws_endpoint: str,
        image_store: Path,
        state_dir: Path,
        host: str = "127.0.0.1",
        alb_admin_url: str | None = None,
    ) -> None:
        self.name = eks.name
        self.arn = eks.arn
        self.addresses = addresses
        self.host = host
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.kubeconfig = state_dir / "kubeconfig" / eks.name
        self.kubelet_dir = state_dir / "kubelet" / eks.name
        shutil.rmtree(self.kubelet_dir, ignore_errors=True)  # left by a binding that was killed
        self.cluster = LocalCluster(
            ClusterConfig(
                elastic_nodes=True,
                image_store=image_store,
                kubelet_dir=self.kubelet_dir,
                pod_cidr=addresses.pod_cidr,
                service_cidr=addresses.service_cidr,
                aws_endpoint=aws_endpoint,
                cluster_name=eks.name,
                api_url=self.url,
                alb_admin_url=alb_admin_url,
            )
        )
        self.nodes: dict[tuple[str, int], NodeSpec] = {}
        self._shutdown = asyncio.Event()
        self._server: asyncio.Task[None] | None = None
        self._applying: asyncio.Task[None] | None = None

    @property
    def agent(self) -> NodeAgent:
        assert self.cluster.agent is not None  # an elastic cluster always has its node agent
        return self.cluster.agent

    def describe(self) -> dict[str, Any]:
        """This cluster's entry in `clusters.json`."""
        return {
            "arn": self.arn,
            "api": self.url,
            "kubeconfig": str(self.kubeconfig),
            "podCIDR": self.addresses.pod_cidr,
            "serviceCIDR": self.addresses.service_cidr,
            "nodes": sorted(spec.name for spec in self.nodes.values()),
        }

    async def start(self) -> None:
        """Serve the API and wait until it takes connections; then write the kubeconfig."""
        self._server = asyncio.create_task(
            serve(self.cluster.app, self.host, self.port, GRACEFUL_TIMEOUT_SECONDS, self._shutdown.wait),
            name=f"api {self.name}",
        )
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_SECONDS
        while not await self._listening():
            if self._server.done():
                self._server.result()  # raises what stopped it
                raise RuntimeError(f"the API server of {self.name} stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the API server of {self.name} did not start in {START_TIMEOUT_SECONDS}s")
            await asyncio.sleep(0.05)
        write_kubeconfig(self.kubeconfig, self.url, name=self.arn)
        log.info("cluster %s serves %s (kubeconfig %s)", self.name, self.url, self.kubeconfig)

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def leaving(self) -> set[str]:
        """The nodes the cluster autoscaler is removing (tainted `ToBeDeletedByClusterAutoscaler`): when
        their group shrinks, they are the ones to go, as the autoscaler terminates those very instances."""
        found = set()
        for node in self.cluster.store.iter_objects(NODES):
            taints = (node.get("spec") or {}).get("taints") or []
            if any(t.get("key") == TO_BE_DELETED for t in taints):
                found.add(str(node["metadata"]["name"]))
        return found

    def follow(self, plan: Plan, changed: Callable[[], None]) -> None:
        """Apply `plan` in the background, calling `changed` when nodes came or went; while an earlier
        plan is still being applied (a drain a disruption budget holds up) this one is dropped: the next
        poll brings it again."""
        if self._applying is None or self._applying.done():
            self._applying = asyncio.create_task(self._apply(plan, changed), name=f"nodes {self.name}")

    async def _apply(self, plan: Plan, changed: Callable[[], None]) -> None:
        try:
            if await self.apply(plan):
                changed()
        except Exception:  # the next poll tries again
            log.exception("cluster %s: applying its node groups", self.name)

    async def apply(self, plan: Plan) -> bool:
        """Make the cluster's nodes those of `plan`; True when something changed."""
        surplus = sorted(
            (key for key in self.nodes if key not in plan.nodes), key=lambda key: (-key[1], key[0])
        )
        missing = [key for key in plan.nodes if key not in self.nodes]
        for key in missing:
            spec = plan.nodes[key]
            self.agent.add_node(spec.name, spec.labels, spec.capacity, spec.addresses)
            self.nodes[key] = spec
            log.info("cluster %s: node %s added (%s, %s)", self.name, spec.name, key[0], spec.zone)
        for key in surplus:
            cordon(self.cluster.store, self.nodes[key].name)
        for key in surplus:
            spec = self.nodes.pop(key)
            await remove_node(self.cluster.store, spec.name, self.agent.stop_node)
            log.info("cluster %s: node %s drained and removed", self.name, spec.name)
        return bool(surplus or missing)

    async def stop(self) -> None:
        """Stop the API server (and with it every pod); remove the kubeconfig and the kubelet state."""
        if self._applying is not None:
            self._applying.cancel()
            await asyncio.gather(self._applying, return_exceptions=True)
        self._shutdown.set()
        if self._server is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                    await self._server
            except Exception:  # the server is gone either way; its pods were stopped by its shutdown
                log.exception("stopping the API server of %s", self.name)
        if self.cluster.agent is not None:
            await self.cluster.agent.stop()  # a no-op after a clean shutdown; a safety net otherwise
        self.kubeconfig.unlink(missing_ok=True)
        shutil.rmtree(self.kubelet_dir, ignore_errors=True)
        log.info("cluster %s stopped", self.name)
