"""The EKS binding's model: which Nodes a node group stands for (names, private addresses, zones, labels,
capacity), how a plan follows a changed size, and the address blocks clusters get."""

from __future__ import annotations

import ipaddress
import re

from sim.aws.instance_types import node_capacity
from sim.eks.binding import ADDRESS_BLOCKS, AddressBlocks, addresses_for
from sim.eks.nodes import NodeGroup, Subnet, plan_nodes
from sim.k8s.defaults import DEFAULT_SERVICE_CIDR

SUBNETS = (
    Subnet("subnet-a", "10.0.1.0/24", "us-east-1a", "use1-az6"),
    Subnet("subnet-b", "10.0.2.0/24", "us-east-1b", "use1-az1"),
    Subnet("subnet-c", "10.0.3.0/24", "us-east-1c", "use1-az2"),
)


def group(desired: int, name: str = "workers", instance_type: str = "t3.medium") -> NodeGroup:
    return NodeGroup("shop", name, instance_type, "ON_DEMAND", desired, SUBNETS, {"role": "app"})


def test_nodes_are_named_by_their_private_address_in_their_subnet_and_spread_round_robin() -> None:
    plan = plan_nodes("us-east-1", [group(4)])
    assert not plan.problems
    specs = [plan.nodes["workers", i] for i in range(4)]
    assert [s.zone for s in specs] == ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1a"]
    for spec, subnet in zip(specs, [*SUBNETS, SUBNETS[0]], strict=True):
        assert re.fullmatch(r"ip-10-0-[123]-\d+\.ec2\.internal", spec.name), spec.name
        address = ipaddress.ip_address(spec.address)
        assert spec.name == f"ip-{spec.address.replace('.', '-')}.ec2.internal"
        network = ipaddress.ip_network(subnet.cidr)
        assert address in network
        assert network.network_address + 4 <= address < network.broadcast_address  # AWS's reserved ones
        assert spec.addresses == [
            {"type": "InternalIP", "address": spec.address},
            {"type": "InternalDNS", "address": spec.name},
            {"type": "Hostname", "address": spec.name},
        ]
        assert spec.labels["topology.kubernetes.io/zone"] == subnet.zone
        assert spec.labels["topology.k8s.aws/zone-id"] == subnet.zone_id
    assert len({s.name for s in specs}) == len({s.address for s in specs}) == 4
    assert specs[0].labels == {
        "role": "app",
        "node.kubernetes.io/instance-type": "t3.medium",
        "beta.kubernetes.io/instance-type": "t3.medium",
        "topology.kubernetes.io/zone": "us-east-1a",
        "failure-domain.beta.kubernetes.io/zone": "us-east-1a",
        "topology.k8s.aws/zone-id": "use1-az6",
        "topology.kubernetes.io/region": "us-east-1",
        "failure-domain.beta.kubernetes.io/region": "us-east-1",
        "eks.amazonaws.com/nodegroup": "workers",
        "eks.amazonaws.com/capacityType": "ON_DEMAND",
        "kubernetes.io/hostname": specs[0].name,
    }
    assert specs[0].capacity == {"cpu": "2", "memory": "4Gi", "pods": "17", "ephemeral-storage": "20Gi"}


def test_names_and_addresses_are_stable_and_scaling_keeps_the_oldest_nodes() -> None:
    two = plan_nodes("us-east-1", [group(2)])
    assert plan_nodes("us-east-1", [group(2)]).nodes == two.nodes
    three = plan_nodes("us-east-1", [group(3)], two.nodes)
    assert {k: three.nodes[k] for k in two.nodes} == two.nodes
    one = plan_nodes("us-east-1", [group(1)], three.nodes)
    assert list(one.nodes) == [("workers", 0)]
    assert one.nodes["workers", 0] == two.nodes["workers", 0]


def test_nodes_of_many_groups_never_share_a_name() -> None:
    tiny = (Subnet("subnet-t", "10.0.9.0/28", "us-east-1a"),)  # 11 usable addresses
    groups = [NodeGroup("shop", f"g{i}", "t3.large", "SPOT", 3, tiny) for i in range(3)]
    plan = plan_nodes("eu-west-1", groups)
    names = [spec.name for spec in plan.nodes.values()]
    assert len(names) == len(set(names)) == 9
    assert len({spec.address for spec in plan.nodes.values()}) == 9
    assert all(
        ipaddress.ip_address(spec.address) in ipaddress.ip_network("10.0.9.0/28")
        for spec in plan.nodes.values()
    )
    assert all(name.endswith(".eu-west-1.compute.internal") for name in names)
    assert plan.nodes["g0", 0].labels["eks.amazonaws.com/capacityType"] == "SPOT"
    assert plan.nodes["g0", 0].capacity["memory"] == "8Gi"
    assert plan.nodes["g0", 0].capacity["pods"] == "35"


def test_a_group_of_an_unknown_instance_type_or_without_subnets_gets_no_nodes_and_a_reason() -> None:
    orphan = NodeGroup("shop", "orphan", "t3.medium", "ON_DEMAND", 1, ())
    plan = plan_nodes("us-east-1", [group(1), group(2, "exotic", "x9.mega"), orphan])
    assert list(plan.nodes) == [("workers", 0)]
    assert "x9.mega" in plan.problems["exotic"]
    assert "subnets" in plan.problems["orphan"]
    assert node_capacity("x9.mega") is None


def test_a_group_is_read_from_describe_nodegroup() -> None:
    described = {
        "nodegroupName": "workers",
        "clusterName": "shop",
        "instanceTypes": ["t3.large"],
        "capacityType": "ON_DEMAND",
        "scalingConfig": {"minSize": 1, "maxSize": 4, "desiredSize": 2},
        "subnets": ["subnet-b", "subnet-gone"],
        "labels": {"tier": "web"},
        "diskSize": 50,
    }
    parsed = NodeGroup.from_api(described, {s.id: s for s in SUBNETS})
    assert parsed == NodeGroup(
        "shop", "workers", "t3.large", "ON_DEMAND", 2, (SUBNETS[1],), {"tier": "web"}, 50
    )
    assert plan_nodes("us-east-1", [parsed]).nodes["workers", 1].capacity["ephemeral-storage"] == "50Gi"


def test_address_blocks_do_not_overlap_each_other_the_defaults_or_the_test_ranges() -> None:
    taken = [ipaddress.ip_network(DEFAULT_SERVICE_CIDR), ipaddress.ip_network("127.61.0.0/16")]
    taken += [ipaddress.ip_network(f"127.{n}.0.0/16") for n in range(61, 122)]
    taken += [ipaddress.ip_network("127.200.0.0/13")]  # the pytest plugin's clusters: 127.200 upward
    seen: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for block in ADDRESS_BLOCKS:
        addresses = addresses_for(block)
        for cidr in (addresses.pod_cidr, addresses.service_cidr):
            network = ipaddress.ip_network(cidr)
            assert not any(network.overlaps(other) for other in taken + seen), cidr
            seen.append(network)


def test_a_stopped_clusters_block_is_given_out_again() -> None:
    blocks = AddressBlocks([160, 161])
    first = blocks.take("a")
    assert blocks.take("b").pod_cidr == "127.161.0.0/17"
    blocks.give_back("a")
    assert blocks.take("c") == first
