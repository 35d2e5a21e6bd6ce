"""The Nodes an EKS cluster's node groups stand for: how many, named how, with which labels and capacity.

A managed node group of `desiredSize` instances spreads them round robin over its subnets (so over their
availability zones); each instance is named by its private address as EC2 names it
(`ip-10-0-1-23.ec2.internal`). Here node number `i` of a group goes to subnet `i mod n`, and its address
is picked inside that subnet's CIDR from a hash of (group, i): the same group and size always give the
same names. A plan keeps the nodes that exist and adds or drops from the end, so scaling down removes the
newest nodes first, and a name and address once given stay; except that the nodes `leaving` (those the
cluster autoscaler marked for deletion, as it terminates that very instance in AWS) go before any other,
and a new node then takes the lowest slot free (so the group's nodes stay spread over its subnets).

The Node reports that private address as EKS's do (`InternalIP`, then the private DNS name as
`InternalDNS` and `Hostname`), though nothing listens on it here: the node's processes run on loopback,
and whatever must reach them uses the pod's loopback address, never the node's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from sim.aws.instance_types import node_capacity

#: addresses AWS keeps in every subnet: the network, the router, DNS, one reserved, and the broadcast
RESERVED_LOW, RESERVED_HIGH = 4, 1
DEFAULT_DISK_GIB = 20


@dataclass(frozen=True)
class Subnet:
    id: str
    cidr: str
    zone: str
    #: the zone's account-independent id (`use1-az1`), as `describe_subnets` gives it
    zone_id: str = ""


@dataclass(frozen=True)
class NodeGroup:
    """What of a `describe_nodegroup` answer decides its nodes."""

    cluster: str
    name: str
    instance_type: str
    capacity_type: str
    desired: int
    subnets: tuple[Subnet, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    disk_gib: int = DEFAULT_DISK_GIB

    @classmethod
    def from_api(cls, nodegroup: Mapping[str, Any], subnets: Mapping[str, Subnet]) -> NodeGroup:
        """From boto3's `describe_nodegroup()["nodegroup"]`; subnets the emulator does not know are left
        out (a group with none left has no nodes)."""
        types = nodegroup.get("instanceTypes") or ["t3.medium"]
        return cls(
            cluster=str(nodegroup.get("clusterName", "")),
            name=str(nodegroup["nodegroupName"]),
            instance_type=str(types[0]),
            capacity_type=str(nodegroup.get("capacityType") or "ON_DEMAND"),
            desired=int((nodegroup.get("scalingConfig") or {}).get("desiredSize", 0)),
            subnets=tuple(subnets[s] for s in nodegroup.get("subnets") or [] if s in subnets),
            labels=dict(nodegroup.get("labels") or {}),
            disk_gib=int(nodegroup.get("diskSize") or DEFAULT_DISK_GIB),
        )


@dataclass(frozen=True)
class NodeSpec:
    """One Node to run: its name, private address, labels and capacity, and the slot of its group it
    fills."""

    name: str
    address: str
    nodegroup: str
    index: int
    zone: str
    labels: Mapping[str, str]
    capacity: Mapping[str, str]

    @property
    def addresses(self) -> list[dict[str, str]]:
        """`status.addresses` of an EKS node in a private subnet."""
        return [
            {"type": "InternalIP", "address": self.address},
            {"type": "InternalDNS", "address": self.name},
            {"type": "Hostname", "address": self.name},
        ]


@dataclass
class Plan:
    """The nodes a cluster should have, by (group, index), and why any group has none."""

    nodes: dict[tuple[str, int], NodeSpec]
    problems: dict[str, str]


def dns_suffix(region: str) -> str:
    """EC2's private DNS domain: `ec2.internal` in us-east-1, `REGION.compute.internal` elsewhere."""
    return "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"


def node_name(address: ipaddress.IPv4Address, region: str) -> str:
    return f"ip-{str(address).replace('.', '-')}.{dns_suffix(region)}"


def topology_labels(instance_type: str, subnet: Subnet, region: str) -> dict[str, str]:
    """The instance type and topology labels the AWS cloud provider puts on an EKS node: the stable ones,
    their deprecated beta twins (still set in 1.30) and the zone id."""
    labels = {
        "node.kubernetes.io/instance-type": instance_type,
        "beta.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/zone": subnet.zone,
        "failure-domain.beta.kubernetes.io/zone": subnet.zone,
        "topology.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/region": region,
    }
    if subnet.zone_id:
        labels["topology.k8s.aws/zone-id"] = subnet.zone_id
    return labels


def _address(subnet: Subnet, group: NodeGroup, index: int, taken: set[str]) -> ipaddress.IPv4Address:
    """The private address of node `index` of `group` in `subnet`: a hashed host address, the next free
    one on a clash."""
    network = ipaddress.IPv4Network(subnet.cidr)
    usable = network.num_addresses - RESERVED_LOW - RESERVED_HIGH
    if usable <= 0:
        raise ValueError(f"subnet {subnet.id} ({subnet.cidr}) has no host addresses")
    digest = hashlib.sha256(f"{group.cluster}/{group.name}/{index}".encode()).digest()
    start = int.from_bytes(digest[:8], "big") % usable
    for step in range(usable):
        address = network.network_address + RESERVED_LOW + (start + step) % usable
        if str(address) not in taken:
            return address
    raise ValueError(f"subnet {subnet.id} ({subnet.cidr}) is full")


def plan_nodes(
    region: str,
    groups: Iterable[NodeGroup],
    current: Mapping[tuple[str, int], NodeSpec] | None = None,
    leaving: Set[str] = frozenset(),
) -> Plan:
    """The nodes of `groups`: the `current` ones that still fit their group's size (those not `leaving`
    first, then the oldest), then new ones in the lowest free slots."""
    current = current or {}
    groups = sorted(groups, key=lambda g: g.name)
    nodes: dict[tuple[str, int], NodeSpec] = {}
    problems: dict[str, str] = {}
    usable: list[tuple[NodeGroup, dict[str, str]]] = []
    for group in groups:
        capacity = node_capacity(group.instance_type, group.disk_gib)
        if capacity is None:
            problems[group.name] = f"instance type {group.instance_type!r} is not known to the local cloud"
        elif group.desired > 0 and not group.subnets:
            problems[group.name] = "none of its subnets exists in the emulator"
        else:
            usable.append((group, capacity))
            mine = sorted(
                (key for key in current if key[0] == group.name),
                key=lambda key: (current[key].name in leaving, key[1]),
            )
            for key in mine[: group.desired]:
                nodes[key] = current[key]
    taken = {spec.address for spec in nodes.values()}
    for group, capacity in usable:
        free = (i for i in itertools.count() if (group.name, i) not in nodes)
        while sum(1 for key in nodes if key[0] == group.name) < group.desired:
            index = next(free)
            subnet = group.subnets[index % len(group.subnets)]
            address = _address(subnet, group, index, taken)
            taken.add(str(address))
            name = node_name(address, region)
            labels = {
                **group.labels,
                **topology_labels(group.instance_type, subnet, region),
                "eks.amazonaws.com/nodegroup": group.name,
                "eks.amazonaws.com/capacityType": group.capacity_type,
                "kubernetes.io/hostname": name,
            }
            nodes[group.name, index] = NodeSpec(
                name, str(address), group.name, index, subnet.zone, labels, capacity
            )
    return Plan(nodes, problems)
