"""The kubelet of one node: the pods it runs, by uid, and a clean stop of them all."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sim.kubelet.container import KubeletConfig
from sim.kubelet.pod import PodRuntime
from sim.kubelet.spec import PodSpec


class Kubelet:
    def __init__(self, config: KubeletConfig) -> None:
        self.config = config
        self._pods: dict[str, PodRuntime] = {}

    async def run_pod(self, pod: Mapping[str, Any], pod_ip: str) -> PodRuntime:
        """Start `pod` on `pod_ip`; a pod whose uid already runs here is returned as it is."""
        uid = PodSpec.parse(pod).uid
        if uid in self._pods:
            return self._pods[uid]
        runtime = PodRuntime(pod, pod_ip, self.config)
        self._pods[uid] = runtime
        return await runtime.start()

    def get(self, uid: str) -> PodRuntime | None:
        return self._pods.get(uid)

    def pods(self) -> dict[str, PodRuntime]:
        return dict(self._pods)

    async def stop_pod(self, uid: str, grace: float | None = None) -> None:
        runtime = self._pods.pop(uid, None)
        if runtime is not None:
            await runtime.stop(grace)

    async def stop_all(self, grace: float | None = None) -> None:
        """Stop every pod at once (each with its own grace period unless `grace` is given)."""
        pods, self._pods = list(self._pods.values()), {}
        await asyncio.gather(*(runtime.stop(grace) for runtime in pods))

    async def read_log(self, pod: Mapping[str, Any], query: Mapping[str, str]) -> bytes:
        """`pods/log` for the API server: `container`, `previous`, `tailLines`, `limitBytes` honoured.

        `LookupError` (with the message kubectl shows) when the pod, container or log is not there.
        """
        spec = PodSpec.parse(pod)
        runtime = self._pods.get(spec.uid)
        if runtime is None:
            raise LookupError(f"pod {spec.name!r} is not running on this node")
        names = list(runtime.containers)
        name = query.get("container") or (names[0] if len(names) == 1 else "")
        if name not in runtime.containers:
            raise LookupError(
                f"a container name must be specified for pod {spec.name}, choose one of: {names}"
                if not name
                else f"container {name} is not valid for pod {spec.name}"
            )
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        text = runtime.logs(name, previous=query.get("previous") == "true", tail=tail).encode()
        if query.get("limitBytes"):
            text = text[: int(query["limitBytes"])]
        return text

    def metrics(self) -> list[dict[str, Any]]:
        """Every pod's usage, as metrics.k8s.io's PodMetrics list items."""
        return [runtime.usage() for runtime in self._pods.values()]
