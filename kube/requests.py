"""What a pod asks of its node and what a node offers, as the scheduler counts them: the local
cluster's scheduler places pods by it and the cluster autoscaler's stand-in simulates that placement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kube.quantity import memory_bytes, parse_quantity


@dataclass
class Resources:
    """CPU in cores, memory in bytes, and a count of pods."""

    cpu: Decimal = Decimal(0)
    memory: int = 0
    pods: int = 0

    def __iadd__(self, other: Resources) -> Resources:
        self.cpu += other.cpu
        self.memory += other.memory
        self.pods += other.pods
        return self

    def __isub__(self, other: Resources) -> Resources:
        self.cpu -= other.cpu
        self.memory -= other.memory
        self.pods -= other.pods
        return self

    def fits(self, other: Resources) -> bool:
        """Whether `other` fits in this much room."""
        return other.cpu <= self.cpu and other.memory <= self.memory and other.pods <= self.pods

    def copy(self) -> Resources:
        return Resources(self.cpu, self.memory, self.pods)


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What a pod asks of its node: the sum of its containers' requests (limits when no request is set,
    as the API server defaults them), with init containers' maximum when larger."""
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> tuple[Decimal, int]:
        res = container.get("resources") or {}
        wanted = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        cpu = parse_quantity(wanted["cpu"]) if "cpu" in wanted else Decimal(0)
        return cpu, memory_bytes(wanted["memory"]) if "memory" in wanted else 0

    total = Resources(pods=1)
    for container in spec.get("containers") or []:
        cpu, memory = of(container)
        total.cpu += cpu
        total.memory += memory
    for container in spec.get("initContainers") or []:
        cpu, memory = of(container)
        total.cpu, total.memory = max(total.cpu, cpu), max(total.memory, memory)
    return total


def allocatable(values: Mapping[str, Any]) -> Resources:
    """A node's `status.allocatable` (or a node template's capacity) as numbers."""
    return Resources(
        parse_quantity(values.get("cpu", "0")),
        memory_bytes(values.get("memory", "0")),
        int(values.get("pods", 0)),
    )
