"""One pod on this node: its containers, its Kubernetes-shaped status, and a stream of its changes."""

from __future__ import annotations

import asyncio
import copy
import shutil
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sim.kubelet.container import Container, KubeletConfig
from sim.kubelet.spec import PodSpec
from sim.kubelet.status import Conditions, now, phase, ready_condition, timestamp
from sim.kubelet.volumes import PodVolumes

HOST_IP = "127.0.0.1"


class PodRuntime:
    """Run a pod (a dict shaped like a Kubernetes Pod) on `pod_ip`, a loopback address the caller picks.

    `status()` is the pod's `status` object; `changes()` yields it each time it changes, until the pod
    has stopped; `stop()` stops every container (preStop, SIGTERM, SIGKILL after the grace period).
    The status's conditions are the ones a kubelet owns: `ContainersReady` from the containers alone,
    `Ready` from them and the pod's readiness gates, whose conditions others set in the API (`observe`
    hands the runtime the pod as stored, so that it sees them change).
    """

    def __init__(self, pod: Mapping[str, Any], pod_ip: str, config: KubeletConfig) -> None:
        self.spec = PodSpec.parse(pod)
        self.pod_ip = pod_ip
        self.config = config
        self.volumes = PodVolumes(
            config.pod_volumes(self.spec), self.spec.volumes, self.spec.namespace, config.config_source
        )
        self.containers = {
            c.name: Container(self.spec, c, pod_ip, config, self._notify, self.volumes)
            for c in self.spec.containers
        }
        self._conditions = Conditions()
        gates = (pod.get("spec") or {}).get("readinessGates") or []
        self._gates = [str(g.get("conditionType")) for g in gates]
        self._gate_status: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._started_at = now()
        self._finished = False
        self._snapshot: dict[str, Any] = {}
        self._watch: asyncio.Task[None] | None = None
        self._notify()

    async def start(self) -> PodRuntime:
        for container in self.containers.values():
            self._tasks.append(
                asyncio.create_task(container.run(), name=f"{self.spec.name}/{container.spec.name}")
            )
        self._watch = asyncio.create_task(self._watch_tasks())
        return self

    async def _watch_tasks(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._finished = True
        self._notify()

    async def stop(self, grace: float | None = None) -> None:
        """Stop every container at once and wait for the containers' tasks to end."""
        await asyncio.gather(*(c.stop(grace) for c in self.containers.values()))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self.volumes.root, True)
        self._finished = True
        self._notify()

    async def refresh_volumes(self) -> None:
        """Rewrite the ConfigMap and Secret volumes from their sources (call when one changed): files
        change in place, atomically, as a kubelet's sync does; `ConfigError` if a source is gone."""
        await asyncio.to_thread(self.volumes.write_all)

    # -- status

    def _will_restart(self) -> bool:
        if self._finished:
            return False
        policy = self.spec.restart_policy
        if policy == "Always":
            return True
        return policy == "OnFailure" and any(
            c.status.state.kind == "terminated" and c.status.state.exit_code != 0
            for c in self.containers.values()
        )

    def observe(self, pod: Mapping[str, Any]) -> None:
        """The pod as the API has it now: its readiness gates' conditions may have changed."""
        conditions = (pod.get("status") or {}).get("conditions") or []
        found = {str(c.get("type")): str(c.get("status")) for c in conditions if c.get("type") in self._gates}
        if found != self._gate_status:
            self._gate_status = found
            self._notify()

    def _notify(self) -> None:
        statuses = [c.status for c in self.containers.values()]
        containers_ready, reason, message = ready_condition(statuses, (), {})
        self._conditions.set("Initialized", True)
        self._conditions.set("Ready", *ready_condition(statuses, self._gates, self._gate_status))
        self._conditions.set("ContainersReady", containers_ready, reason, message)
        self._conditions.set("PodScheduled", True)
        self._snapshot = {
            "phase": phase(statuses, self._will_restart()),
            "conditions": self._conditions.to_api(),
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": timestamp(self._started_at),
            "containerStatuses": [s.to_api() for s in statuses],
        }
        self._changed.set()
        self._changed = asyncio.Event()

    def status(self) -> dict[str, Any]:
        return copy.deepcopy(self._snapshot)

    def container_status(self, name: str) -> dict[str, Any]:
        return self.containers[name].status.to_api()

    async def changes(self) -> AsyncIterator[dict[str, Any]]:
        """The pod's status now, then at each change; ends once the pod's containers have all stopped."""
        last: dict[str, Any] | None = None
        while True:
            changed = self._changed
            if self._snapshot != last:
                last = self.status()
                yield last
            if self._finished:
                return
            await changed.wait()

    # -- logs and usage

    def logs(self, container: str, previous: bool = False, tail: int | None = None) -> str:
        return self.containers[container].logs.read(previous, tail)

    def follow(self, container: str) -> AsyncIterator[str]:
        runtime = self.containers[container]
        return runtime.logs.follow(runtime.running)

    def usage(self) -> dict[str, Any]:
        """The pod's usage as metrics.k8s.io's PodMetrics reports it."""
        return {
            "metadata": {"name": self.spec.name, "namespace": self.spec.namespace},
            "timestamp": timestamp(now()),
            "window": f"{self.config.sample_period:g}s",
            "containers": [c.usage() for c in self.containers.values()],
        }
