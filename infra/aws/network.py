"""The deploy's network: VPC, one public and one private subnet per zone, internet gateway, a NAT gateway
(and its elastic IP) per zone, route tables per tier, and the cluster, nodes and ALB security groups.

Every resource carries the project's tags (`infra.aws.tags`) and a `Name` that says what it is; facts find
resources by those names and describe what they point at by name too (a route to `nat:<name>`, a rule
from `sg:<name>`), so a plan made before a resource exists compares the same way as one made after.
Commands look ids up by name when they run. `NetworkIds` (and `network_ids`) is how later steps (EKS,
the Kubernetes model) find subnet and security group ids at execute time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from typing import Any

from pyinfra.api.command import FunctionCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.aws.tags import PROJECT_TAG, tag_dict, tag_list, tags
from infra.changes import changes
from infra.cloud import Cloud, cloud_of
from infra.fact import ApiFact
from infra.settings import Settings

log = logging.getLogger("pyinfra")

PUBLIC, PRIVATE = "public", "private"
ANYWHERE = "0.0.0.0/0"
POD_PORT = 8080
#: the subnet tag each tier needs for the AWS Load Balancer Controller to pick it
ROLE_TAGS = {PUBLIC: "kubernetes.io/role/elb", PRIVATE: "kubernetes.io/role/internal-elb"}
GROUPS = ("cluster", "nodes", "alb")
NAT_WAIT_SECONDS = 600

#: a security group rule as facts and operations compare it: protocol, from port, to port, peer
#: (`cidr:<block>` or `sg:<group name without the project>`); protocol "-1" (all) has ports 0, 0
Rule = tuple[str, int, int, str]


# ---------------------------------------------------------------------------------------------- names


def vpc_name(project: str) -> str:
    return f"{project}-vpc"


def subnet_name(project: str, tier: str, zone: str) -> str:
    return f"{project}-{tier}-{zone}"


def igw_name(project: str) -> str:
    return f"{project}-igw"


def nat_name(project: str, zone: str) -> str:
    return f"{project}-nat-{zone}"


def public_route_table_name(project: str) -> str:
    return f"{project}-public"


def private_route_table_name(project: str, zone: str) -> str:
    return f"{project}-private-{zone}"


def group_name(project: str, role: str) -> str:
    return f"{project}-{role}"


def _by_project(project: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{PROJECT_TAG}", "Values": [project]}]


def _names(resources: list[dict[str, Any]], id_key: str) -> dict[str, str]:
    """id -> Name tag of tagged resources."""
    return {r[id_key]: tag_dict(r.get("Tags")).get("Name", r[id_key]) for r in resources}


def _live_nats(ec2: Any, project: str) -> list[dict[str, Any]]:
    found = ec2.describe_nat_gateways(Filters=_by_project(project))["NatGateways"]
    return [n for n in found if n["State"] in ("pending", "available")]


# ---------------------------------------------------------------------------------------------- facts


class Vpc(ApiFact[dict[str, Any] | None]):
    """The project's VPC: id, CIDR, DNS attributes and tags; None when there is none."""

    def command(self, project: str) -> str:
        return self.request(project=project)

    def read(self, cloud: Cloud, project: str) -> dict[str, Any] | None:  # type: ignore[override]
        ec2 = cloud.client("ec2")
        found = ec2.describe_vpcs(
            Filters=[*_by_project(project), {"Name": "tag:Name", "Values": [vpc_name(project)]}]
        )
        if not found["Vpcs"]:
            return None
        vpc = found["Vpcs"][0]

        def attribute(name: str, key: str) -> bool:
            answer = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=name)
            return bool(answer[key]["Value"])

        return {
            "id": vpc["VpcId"],
            "cidr": vpc["CidrBlock"],
            "dns_support": attribute("enableDnsSupport", "EnableDnsSupport"),
            "dns_hostnames": attribute("enableDnsHostnames", "EnableDnsHostnames"),
            "tags": tag_dict(vpc.get("Tags")),
        }


class Subnets(ApiFact[dict[str, dict[str, Any]]]):
    """The project's subnets by name: id, CIDR, zone, public-IP-on-launch and tags."""

    def command(self, project: str) -> str:
        return self.request(project=project)

    def read(self, cloud: Cloud, project: str) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        found = cloud.client("ec2").describe_subnets(Filters=_by_project(project))["Subnets"]
        return {
            tag_dict(s.get("Tags")).get("Name", s["SubnetId"]): {
                "id": s["SubnetId"],
                "cidr": s["CidrBlock"],
                "zone": s["AvailabilityZone"],
                "map_public_ip": bool(s.get("MapPublicIpOnLaunch")),
                "tags": tag_dict(s.get("Tags")),
            }
            for s in found
        }


class InternetGateway(ApiFact[dict[str, Any] | None]):
    """The project's internet gateway: id and the VPCs it is attached to; None when there is none."""

    def command(self, project: str) -> str:
        return self.request(project=project)

    def read(self, cloud: Cloud, project: str) -> dict[str, Any] | None:  # type: ignore[override]
        found = cloud.client("ec2").describe_internet_gateways(Filters=_by_project(project))[
            "InternetGateways"
        ]
        if not found:
            return None
        gateway = found[0]
        return {
            "id": gateway["InternetGatewayId"],
            "vpcs": sorted(a["VpcId"] for a in gateway.get("Attachments", [])),
        }


class NatGateways(ApiFact[dict[str, dict[str, Any]]]):
    """The project's live NAT gateways and elastic IPs by name:
    {"nat": {name: {"id", "subnet" (its name)}}, "eip": {allocation id: name}}."""

    def command(self, project: str) -> str:
        return self.request(project=project)

    def read(self, cloud: Cloud, project: str) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        ec2 = cloud.client("ec2")
        subnets = _names(ec2.describe_subnets(Filters=_by_project(project))["Subnets"], "SubnetId")
        nats = {
            tag_dict(n.get("Tags")).get("Name", n["NatGatewayId"]): {
                "id": n["NatGatewayId"],
                "subnet": subnets.get(n["SubnetId"], n["SubnetId"]),
            }
            for n in _live_nats(ec2, project)
        }
        addresses = ec2.describe_addresses(Filters=_by_project(project))["Addresses"]
        return {"nat": nats, "eip": _names(addresses, "AllocationId")}


class RouteTables(ApiFact[dict[str, dict[str, Any]]]):
    """The project's route tables by name: routes (destination -> `igw:<name>`, `nat:<name>` or a foreign
    id; the VPC's local route left out) and the names of the subnets associated with each."""

    def command(self, project: str) -> str:
        return self.request(project=project)

    def read(self, cloud: Cloud, project: str) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        ec2 = cloud.client("ec2")
        subnets = _names(ec2.describe_subnets(Filters=_by_project(project))["Subnets"], "SubnetId")
        gateways = _names(
            ec2.describe_internet_gateways(Filters=_by_project(project))["InternetGateways"],
            "InternetGatewayId",
        )
        nats = _names(_live_nats(ec2, project), "NatGatewayId")
        tables: dict[str, dict[str, Any]] = {}
        for table in ec2.describe_route_tables(Filters=_by_project(project))["RouteTables"]:
            routes: dict[str, str] = {}
            for route in table.get("Routes", []):
                destination = route.get("DestinationCidrBlock")
                gateway, nat = route.get("GatewayId"), route.get("NatGatewayId")
                if destination is None or gateway == "local":
                    continue
                if gateway in gateways:
                    routes[destination] = f"igw:{gateways[gateway]}"
                elif nat in nats:
                    routes[destination] = f"nat:{nats[nat]}"
                else:
                    routes[destination] = str(gateway or nat or route.get("State", "blackhole"))
            associated = [a["SubnetId"] for a in table.get("Associations", []) if a.get("SubnetId")]
            tables[tag_dict(table.get("Tags")).get("Name", table["RouteTableId"])] = {
                "id": table["RouteTableId"],
                "routes": routes,
                "subnets": sorted(subnets.get(s, s) for s in associated),
            }
        return tables


class SecurityGroups(ApiFact[dict[str, dict[str, Any]]]):
    """The project's security groups by role (`cluster`, `nodes`, `alb`): id and ingress/egress rules as
    sorted `Rule` lists, peers named by role."""

    def command(self, project: str) -> str:
        return self.request(project=project)

    def read(self, cloud: Cloud, project: str) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        found = cloud.client("ec2").describe_security_groups(Filters=_by_project(project))["SecurityGroups"]
        roles = {
            g["GroupId"]: tag_dict(g.get("Tags")).get("Name", g["GroupId"]).removeprefix(f"{project}-")
            for g in found
        }
        return {
            roles[g["GroupId"]]: {
                "id": g["GroupId"],
                "ingress": sorted(_rules(g.get("IpPermissions", []), roles)),
                "egress": sorted(_rules(g.get("IpPermissionsEgress", []), roles)),
            }
            for g in found
        }


class NetworkIds(ApiFact[dict[str, Any]]):
    """The ids later steps need, by role: {"vpc", "public_subnets", "private_subnets" (in zone order),
    "security_groups": {role: id}}; missing resources are left out."""

    def command(self, project: str, zones: list[str]) -> str:
        return self.request(project=project, zones=zones)

    def read(self, cloud: Cloud, project: str, zones: list[str]) -> dict[str, Any]:  # type: ignore[override]
        return network_ids(cloud, project, zones)


def network_ids(cloud: Cloud, project: str, zones: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`NetworkIds` as a function, for commands that look ids up when they run."""
    ec2 = cloud.client("ec2")
    subnets = {
        name: sid
        for sid, name in _names(
            ec2.describe_subnets(Filters=_by_project(project))["Subnets"], "SubnetId"
        ).items()
    }
    groups = ec2.describe_security_groups(Filters=_by_project(project))["SecurityGroups"]
    vpcs = ec2.describe_vpcs(Filters=_by_project(project))["Vpcs"]
    return {
        "vpc": vpcs[0]["VpcId"] if vpcs else None,
        "public_subnets": [subnets[n] for z in zones if (n := subnet_name(project, PUBLIC, z)) in subnets],
        "private_subnets": [subnets[n] for z in zones if (n := subnet_name(project, PRIVATE, z)) in subnets],
        "security_groups": {
            tag_dict(g.get("Tags")).get("Name", "").removeprefix(f"{project}-"): g["GroupId"] for g in groups
        },
    }


def _rules(permissions: list[dict[str, Any]], roles: dict[str, str]) -> Iterator[Rule]:
    for permission in permissions:
        protocol = str(permission["IpProtocol"])
        low, high = (0, 0) if protocol == "-1" else (int(permission["FromPort"]), int(permission["ToPort"]))
        for block in permission.get("IpRanges", []):
            yield (protocol, low, high, f"cidr:{block['CidrIp']}")
        for pair in permission.get("UserIdGroupPairs", []):
            yield (protocol, low, high, f"sg:{roles.get(pair['GroupId'], pair['GroupId'])}")


# ------------------------------------------------------------------------------------ lookups at run time


def _settings(host: Host) -> Settings:
    return cloud_of(host).settings


def _vpc_id(cloud: Cloud) -> str:
    project = cloud.settings.project
    vpc = Vpc().read(cloud, project)
    if vpc is None:
        raise OperationError(f"no VPC {vpc_name(project)}: run the vpc operation first")
    return str(vpc["id"])


def _subnet_id(cloud: Cloud, name: str) -> str:
    found = Subnets().read(cloud, cloud.settings.project)
    if name not in found:
        raise OperationError(f"no subnet {name}: run the subnets operation first")
    return str(found[name]["id"])


def _tag_spec(resource_type: str, project: str, name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tag_list(tags(project, name))}]


# ---------------------------------------------------------------------------------------------- the VPC


def _create_vpc(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    ec2 = cloud.client("ec2")
    vpc_id = ec2.create_vpc(
        CidrBlock=str(s.vpc_cidr), TagSpecifications=_tag_spec("vpc", s.project, vpc_name(s.project))
    )["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vpc_id], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    _set_dns(state, host)


def _set_dns(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    vpc_id = _vpc_id(cloud)
    ec2 = cloud.client("ec2")
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})


def _tag(state: State, host: Host, resource_id: str, values: dict[str, str]) -> None:
    cloud_of(host).client("ec2").create_tags(Resources=[resource_id], Tags=tag_list(values))


def _untag(state: State, host: Host, resource_id: str, keys: list[str]) -> None:
    cloud_of(host).client("ec2").delete_tags(Resources=[resource_id], Tags=[{"Key": k} for k in keys])


def _delete_vpc(state: State, host: Host, vpc_id: str) -> None:
    cloud_of(host).client("ec2").delete_vpc(VpcId=vpc_id)


def _missing_tags(have: dict[str, str], want: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in want.items() if have.get(k) != v}


@operation()
def vpc(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The VPC `settings.vpc_cidr`, with DNS support and hostnames on (EKS needs both)."""
    s = _settings(host)
    current = host.get_fact(Vpc, project=s.project)
    if not present:
        if current is None:
            host.noop(f"VPC {vpc_name(s.project)} is absent")
            return
        yield FunctionCommand(_delete_vpc, (current["id"],), {})
        return
    if current is None:
        yield FunctionCommand(_create_vpc, (), {})
        return
    if current["cidr"] != str(s.vpc_cidr):
        raise OperationError(
            f"VPC {vpc_name(s.project)} has CIDR {current['cidr']}, settings say {s.vpc_cidr}: "
            "a VPC's CIDR cannot change; tear the network down first"
        )
    commands: list[FunctionCommand] = []
    if not (current["dns_support"] and current["dns_hostnames"]):
        commands.append(FunctionCommand(_set_dns, (), {}))
    missing = _missing_tags(current["tags"], tags(s.project, vpc_name(s.project)))
    if missing:
        commands.append(FunctionCommand(_tag, (current["id"], missing), {}))
    yield from changes(commands, f"VPC {vpc_name(s.project)} is {s.vpc_cidr} with DNS on")


# ---------------------------------------------------------------------------------------------- subnets


def _wanted_subnets(s: Settings) -> dict[str, dict[str, Any]]:
    wanted: dict[str, dict[str, Any]] = {}
    for tier, blocks in ((PUBLIC, s.public_subnets), (PRIVATE, s.private_subnets)):
        for zone, block in zip(s.zones, blocks, strict=True):
            name = subnet_name(s.project, tier, zone)
            wanted[name] = {
                "cidr": str(block),
                "zone": zone,
                "map_public_ip": tier == PUBLIC,
                "tags": tags(
                    s.project,
                    name,
                    **{ROLE_TAGS[tier]: "1", f"kubernetes.io/cluster/{s.cluster_name}": "shared"},
                ),
            }
    return wanted


def _create_subnet(
    state: State, host: Host, subnet_name_: str, cidr: str, zone: str, tag_values: dict[str, str]
) -> None:
    cloud = cloud_of(host)
    ec2 = cloud.client("ec2")
    ec2.create_subnet(
        VpcId=_vpc_id(cloud),
        CidrBlock=cidr,
        AvailabilityZone=zone,
        TagSpecifications=[{"ResourceType": "subnet", "Tags": tag_list(tag_values)}],
    )


def _map_public_ip(state: State, host: Host, subnet_name_: str, value: bool) -> None:
    cloud = cloud_of(host)
    cloud.client("ec2").modify_subnet_attribute(
        SubnetId=_subnet_id(cloud, subnet_name_), MapPublicIpOnLaunch={"Value": value}
    )


def _delete_subnet(state: State, host: Host, subnet_id: str) -> None:
    cloud_of(host).client("ec2").delete_subnet(SubnetId=subnet_id)


@operation()
def subnets(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """One public and one private subnet per zone, tagged for the load balancer controller and the cluster."""
    s = _settings(host)
    current = host.get_fact(Subnets, project=s.project)
    wanted = _wanted_subnets(s)
    if not present:
        if not current:
            host.noop("no subnets")
            return
        for have in current.values():
            yield FunctionCommand(_delete_subnet, (have["id"],), {})
        return
    commands: list[FunctionCommand] = []
    for subnet, want in wanted.items():
        if subnet not in current:
            commands.append(
                FunctionCommand(_create_subnet, (subnet, want["cidr"], want["zone"], want["tags"]), {})
            )
            if want["map_public_ip"]:
                commands.append(FunctionCommand(_map_public_ip, (subnet, True), {}))
            continue
        have = current[subnet]
        if (have["cidr"], have["zone"]) != (want["cidr"], want["zone"]):
            raise OperationError(
                f"subnet {subnet} is {have['cidr']} in {have['zone']}, settings say {want['cidr']} in "
                f"{want['zone']}: a subnet cannot move; tear the network down first"
            )
        if have["map_public_ip"] != want["map_public_ip"]:
            commands.append(FunctionCommand(_map_public_ip, (subnet, want["map_public_ip"]), {}))
        missing = _missing_tags(have["tags"], want["tags"])
        if missing:
            commands.append(FunctionCommand(_tag, (have["id"], missing), {}))
        misplaced = [k for k in ROLE_TAGS.values() if k in have["tags"] and k not in want["tags"]]
        if misplaced:
            commands.append(FunctionCommand(_untag, (have["id"], misplaced), {}))
    yield from changes(commands, f"{len(wanted)} subnets in {len(s.zones)} zones, tagged")


# ------------------------------------------------------------------------------------ internet gateway


def _create_igw(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    gateway = cloud.client("ec2").create_internet_gateway(
        TagSpecifications=_tag_spec("internet-gateway", s.project, igw_name(s.project))
    )["InternetGateway"]["InternetGatewayId"]
    cloud.client("ec2").attach_internet_gateway(InternetGatewayId=gateway, VpcId=_vpc_id(cloud))


def _attach_igw(state: State, host: Host, gateway_id: str) -> None:
    cloud = cloud_of(host)
    cloud.client("ec2").attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=_vpc_id(cloud))


def _delete_igw(state: State, host: Host, gateway_id: str, vpc_ids: list[str]) -> None:
    ec2 = cloud_of(host).client("ec2")
    for vpc_id in vpc_ids:
        ec2.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=gateway_id)


@operation()
def internet_gateway(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The VPC's internet gateway, for the public subnets."""
    s = _settings(host)
    current = host.get_fact(InternetGateway, project=s.project)
    if not present:
        if current is None:
            host.noop(f"internet gateway {igw_name(s.project)} is absent")
            return
        yield FunctionCommand(_delete_igw, (current["id"], current["vpcs"]), {})
        return
    if current is None:
        yield FunctionCommand(_create_igw, (), {})
        return
    vpc_now = host.get_fact(Vpc, project=s.project)
    if vpc_now is None or vpc_now["id"] not in current["vpcs"]:
        yield FunctionCommand(_attach_igw, (current["id"],), {})
        return
    host.noop(f"internet gateway {igw_name(s.project)} is attached")


# ------------------------------------------------------------------------------------------ NAT gateways


def _allocate_eip(state: State, host: Host, eip_name: str) -> None:
    s = _settings(host)
    cloud_of(host).client("ec2").allocate_address(
        Domain="vpc", TagSpecifications=_tag_spec("elastic-ip", s.project, eip_name)
    )


def _create_nat(state: State, host: Host, zone: str) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    ec2 = cloud.client("ec2")
    name = nat_name(s.project, zone)
    addresses = {v: k for k, v in NatGateways().read(cloud, s.project)["eip"].items()}
    if name not in addresses:
        raise OperationError(f"no elastic IP {name}")
    nat_id = ec2.create_nat_gateway(
        SubnetId=_subnet_id(cloud, subnet_name(s.project, PUBLIC, zone)),
        AllocationId=addresses[name],
        TagSpecifications=_tag_spec("natgateway", s.project, name),
    )["NatGateway"]["NatGatewayId"]
    log.info(f"{host.print_prefix}waiting for NAT gateway {name} to be available")
    ec2.get_waiter("nat_gateway_available").wait(
        NatGatewayIds=[nat_id], WaiterConfig={"Delay": 10, "MaxAttempts": NAT_WAIT_SECONDS // 10}
    )


def _delete_nat(state: State, host: Host, nat_id: str) -> None:
    ec2 = cloud_of(host).client("ec2")
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    deadline = time.monotonic() + NAT_WAIT_SECONDS
    while time.monotonic() < deadline:
        found = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
        if not found or found[0]["State"] == "deleted":
            return
        log.info(f"{host.print_prefix}waiting for NAT gateway {nat_id} to be deleted ({found[0]['State']})")
        time.sleep(10)
    raise OperationError(f"NAT gateway {nat_id} was not deleted within {NAT_WAIT_SECONDS}s")


def _release_eip(state: State, host: Host, allocation_id: str) -> None:
    cloud_of(host).client("ec2").release_address(AllocationId=allocation_id)


@operation()
def nat_gateways(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """One elastic IP and NAT gateway per zone, in that zone's public subnet."""
    s = _settings(host)
    current = host.get_fact(NatGateways, project=s.project)
    if not present:
        if not current["nat"] and not current["eip"]:
            host.noop("no NAT gateways or elastic IPs")
            return
        for nat in current["nat"].values():
            yield FunctionCommand(_delete_nat, (nat["id"],), {})
        for allocation_id in current["eip"]:
            yield FunctionCommand(_release_eip, (allocation_id,), {})
        return
    eip_names = set(current["eip"].values())
    commands: list[FunctionCommand] = []
    for zone in s.zones:
        name = nat_name(s.project, zone)
        if name not in eip_names:
            commands.append(FunctionCommand(_allocate_eip, (name,), {}))
        nat = current["nat"].get(name)
        if nat is None:
            commands.append(FunctionCommand(_create_nat, (zone,), {}))
        elif nat["subnet"] != subnet_name(s.project, PUBLIC, zone):
            raise OperationError(
                f"NAT gateway {name} is in {nat['subnet']}, not {subnet_name(s.project, PUBLIC, zone)}: "
                "tear the network down to move it"
            )
    yield from changes(commands, f"{len(s.zones)} NAT gateways, one per zone")


# ------------------------------------------------------------------------------------------ route tables


def _wanted_tables(s: Settings) -> dict[str, dict[str, Any]]:
    wanted = {
        public_route_table_name(s.project): {
            "routes": {ANYWHERE: f"igw:{igw_name(s.project)}"},
            "subnets": sorted(subnet_name(s.project, PUBLIC, z) for z in s.zones),
        }
    }
    for zone in s.zones:
        wanted[private_route_table_name(s.project, zone)] = {
            "routes": {ANYWHERE: f"nat:{nat_name(s.project, zone)}"},
            "subnets": [subnet_name(s.project, PRIVATE, zone)],
        }
    return wanted


def _route_table_id(cloud: Cloud, table: str) -> str:
    found = RouteTables().read(cloud, cloud.settings.project)
    if table not in found:
        raise OperationError(f"no route table {table}")
    return str(found[table]["id"])


def _create_route_table(state: State, host: Host, table: str) -> None:
    cloud = cloud_of(host)
    cloud.client("ec2").create_route_table(
        VpcId=_vpc_id(cloud), TagSpecifications=_tag_spec("route-table", cloud.settings.project, table)
    )


def _target(cloud: Cloud, target: str) -> dict[str, str]:
    kind, _, target_name = target.partition(":")
    ec2 = cloud.client("ec2")
    project = cloud.settings.project
    if kind == "igw":
        gateway = InternetGateway().read(cloud, project)
        if gateway is None:
            raise OperationError(f"no internet gateway {target_name}")
        return {"GatewayId": str(gateway["id"])}
    nats = {name: nat_id for nat_id, name in _names(_live_nats(ec2, project), "NatGatewayId").items()}
    if target_name not in nats:
        raise OperationError(f"no NAT gateway {target_name}")
    return {"NatGatewayId": nats[target_name]}


def _put_route(state: State, host: Host, table: str, destination: str, target: str, replace: bool) -> None:
    cloud = cloud_of(host)
    ec2 = cloud.client("ec2")
    arguments = {
        "RouteTableId": _route_table_id(cloud, table),
        "DestinationCidrBlock": destination,
        **_target(cloud, target),
    }
    (ec2.replace_route if replace else ec2.create_route)(**arguments)


def _delete_route(state: State, host: Host, table: str, destination: str) -> None:
    cloud = cloud_of(host)
    cloud.client("ec2").delete_route(
        RouteTableId=_route_table_id(cloud, table), DestinationCidrBlock=destination
    )


def _associate(state: State, host: Host, table: str, subnet: str) -> None:
    cloud = cloud_of(host)
    ec2 = cloud.client("ec2")
    subnet_id = _subnet_id(cloud, subnet)
    table_id = _route_table_id(cloud, table)
    existing = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
    for other in existing["RouteTables"]:
        for association in other.get("Associations", []):
            if association.get("SubnetId") == subnet_id:
                ec2.replace_route_table_association(
                    AssociationId=association["RouteTableAssociationId"], RouteTableId=table_id
                )
                return
    ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)


def _disassociate(state: State, host: Host, table_id: str, subnet_id: str | None) -> None:
    ec2 = cloud_of(host).client("ec2")
    table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
    for association in table.get("Associations", []):
        if association.get("SubnetId") and subnet_id in (None, association["SubnetId"]):
            ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])


def _delete_route_table(state: State, host: Host, table_id: str) -> None:
    _disassociate(state, host, table_id, None)
    cloud_of(host).client("ec2").delete_route_table(RouteTableId=table_id)


@operation()
def route_tables(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """One public route table (default route to the internet gateway) for the public subnets, and one
    private route table per zone (default route to that zone's NAT gateway) for its private subnet."""
    s = _settings(host)
    current = host.get_fact(RouteTables, project=s.project)
    if not present:
        if not current:
            host.noop("no route tables")
            return
        for existing in current.values():
            yield FunctionCommand(_delete_route_table, (existing["id"],), {})
        return
    commands: list[FunctionCommand] = []
    for table, want in _wanted_tables(s).items():
        have = current.get(table) or {"routes": {}, "subnets": []}
        if table not in current:
            commands.append(FunctionCommand(_create_route_table, (table,), {}))
        for destination, target in want["routes"].items():
            if have["routes"].get(destination) != target:
                commands.append(
                    FunctionCommand(
                        _put_route, (table, destination, target, destination in have["routes"]), {}
                    )
                )
        for destination in sorted(set(have["routes"]) - set(want["routes"])):
            commands.append(FunctionCommand(_delete_route, (table, destination), {}))
        for subnet in want["subnets"]:
            if subnet not in have["subnets"]:
                commands.append(FunctionCommand(_associate, (table, subnet), {}))
        for subnet in sorted(set(have["subnets"]) - set(want["subnets"])):
            commands.append(
                FunctionCommand(_disassociate, (have["id"], _subnet_id(cloud_of(host), subnet)), {})
            )
    yield from changes(commands, f"{len(s.zones) + 1} route tables with their routes and subnets")


# ---------------------------------------------------------------------------------------- security groups


def wanted_rules() -> dict[str, dict[str, list[Rule]]]:
    """Least privilege: the internet reaches the ALB on 80/443; the ALB reaches the pods' port on the nodes
    only; nodes talk among themselves and with the control plane (443 and the kubelet/webhook ports)."""
    tcp = "tcp"
    return {
        "alb": {
            "ingress": [(tcp, 80, 80, f"cidr:{ANYWHERE}"), (tcp, 443, 443, f"cidr:{ANYWHERE}")],
            "egress": [(tcp, POD_PORT, POD_PORT, "sg:nodes")],
        },
        "nodes": {
            "ingress": [
                (tcp, POD_PORT, POD_PORT, "sg:alb"),
                ("-1", 0, 0, "sg:nodes"),
                (tcp, 443, 443, "sg:cluster"),
                (tcp, 1025, 65535, "sg:cluster"),
            ],
            # nodes pull images and call AWS APIs through the NAT gateways
            "egress": [("-1", 0, 0, f"cidr:{ANYWHERE}")],
        },
        "cluster": {
            "ingress": [(tcp, 443, 443, "sg:nodes")],
            "egress": [(tcp, 443, 443, "sg:nodes"), (tcp, 1025, 65535, "sg:nodes")],
        },
    }


DESCRIPTIONS = {
    "cluster": "EKS control plane",
    "nodes": "EKS worker nodes",
    "alb": "Application load balancer",
}


def _permission(cloud: Cloud, rule: Rule) -> dict[str, Any]:
    protocol, low, high, peer = rule
    permission: dict[str, Any] = {"IpProtocol": protocol}
    if protocol != "-1":
        permission.update(FromPort=low, ToPort=high)
    kind, _, value = peer.partition(":")
    if kind == "cidr":
        permission["IpRanges"] = [{"CidrIp": value}]
    else:
        groups = SecurityGroups().read(cloud, cloud.settings.project)
        permission["UserIdGroupPairs"] = [{"GroupId": groups[value]["id"] if value in groups else value}]
    return permission


def _group_id(cloud: Cloud, role: str) -> str:
    groups = SecurityGroups().read(cloud, cloud.settings.project)
    if role not in groups:
        raise OperationError(f"no security group {group_name(cloud.settings.project, role)}")
    return str(groups[role]["id"])


def _create_group(state: State, host: Host, role: str) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    ec2 = cloud.client("ec2")
    group = group_name(s.project, role)
    group_id = ec2.create_security_group(
        GroupName=group,
        Description=DESCRIPTIONS[role],
        VpcId=_vpc_id(cloud),
        TagSpecifications=_tag_spec("security-group", s.project, group),
    )["GroupId"]
    # a new group allows all egress: this deploy decides each group's egress itself
    ec2.revoke_security_group_egress(
        GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANYWHERE}]}]
    )


def _authorize(state: State, host: Host, role: str, direction: str, rule: Rule) -> None:
    cloud = cloud_of(host)
    ec2 = cloud.client("ec2")
    call = (
        ec2.authorize_security_group_ingress
        if direction == "ingress"
        else ec2.authorize_security_group_egress
    )
    call(GroupId=_group_id(cloud, role), IpPermissions=[_permission(cloud, rule)])


def _revoke(state: State, host: Host, role: str, direction: str, rule: Rule) -> None:
    cloud = cloud_of(host)
    ec2 = cloud.client("ec2")
    call = ec2.revoke_security_group_ingress if direction == "ingress" else ec2.revoke_security_group_egress
    call(GroupId=_group_id(cloud, role), IpPermissions=[_permission(cloud, rule)])


def _delete_group(state: State, host: Host, group_id: str) -> None:
    cloud_of(host).client("ec2").delete_security_group(GroupId=group_id)


@operation()
def security_groups(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The cluster, nodes and ALB security groups with exactly `wanted_rules()`: rules compare as sets, and
    a rule added by hand is drift that the next run removes."""
    s = _settings(host)
    current = host.get_fact(SecurityGroups, project=s.project)
    if not present:
        if not current:
            host.noop("no security groups")
            return
        # rules first: the groups refer to each other, and a group still referred to cannot be deleted
        for role, have in current.items():
            for direction in ("ingress", "egress"):
                for rule in have[direction]:
                    yield FunctionCommand(_revoke, (role, direction, tuple(rule)), {})
        for have in current.values():
            yield FunctionCommand(_delete_group, (have["id"],), {})
        return
    # every group first: rules refer to each other's ids
    commands = [FunctionCommand(_create_group, (role,), {}) for role in GROUPS if role not in current]
    for role, want in wanted_rules().items():
        have = current.get(role) or {"ingress": [], "egress": []}
        for direction in ("ingress", "egress"):
            existing = {tuple(rule) for rule in have[direction]}
            for rule in sorted(set(want[direction]) - existing):
                commands.append(FunctionCommand(_authorize, (role, direction, rule), {}))
            for rule in sorted(existing - set(want[direction])):
                commands.append(FunctionCommand(_revoke, (role, direction, rule), {}))
    yield from changes(commands, f"security groups {', '.join(GROUPS)} have exactly their rules")
