"""What a node of an EC2 instance type offers Kubernetes: vCPUs, memory, and the EKS pod limit.

The pod limit is EKS's `max-pods` for the type with the VPC CNI (`eni-max-pods.txt`): the ENIs the type
takes times the addresses each holds. A small table of the types a deploy is likely to ask for; a type
not in it has no capacity (`None`), and the binding skips its node group with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    cpu: int
    memory_gib: int
    pods: int


INSTANCE_TYPES: dict[str, InstanceType] = {
    "t3.micro": InstanceType(2, 1, 4),
    "t3.small": InstanceType(2, 2, 11),
    "t3.medium": InstanceType(2, 4, 17),
    "t3.large": InstanceType(2, 8, 35),
    "t3.xlarge": InstanceType(4, 16, 58),
    "t3.2xlarge": InstanceType(8, 32, 58),
    "m5.large": InstanceType(2, 8, 29),
    "m5.xlarge": InstanceType(4, 16, 58),
    "m5.2xlarge": InstanceType(8, 32, 58),
    "c5.large": InstanceType(2, 4, 29),
    "c5.xlarge": InstanceType(4, 8, 58),
    "r5.large": InstanceType(2, 16, 29),
}


def node_capacity(instance_type: str, disk_gib: int = 20) -> dict[str, str] | None:
    """A Node's capacity (and allocatable) for `instance_type`, or None for a type not in the table."""
    known = INSTANCE_TYPES.get(instance_type)
    if known is None:
        return None
    return {
        "cpu": str(known.cpu),
        "memory": f"{known.memory_gib}Gi",
        "pods": str(known.pods),
        "ephemeral-storage": f"{disk_gib}Gi",
    }
