"""The network operations (`infra.aws.network`) against a real moto server through the real pyinfra CLI:
build, no change on a second run, drift reported by `--dry` and repaired, teardown in reverse order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.aws.tags import PROJECT_TAG, tag_dict
from tests.support.pyinfra_run import Run, emulator_client, emulator_data, run_pyinfra

PROJECT = "shopstack"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
OPERATIONS = ("vpc", "subnets", "internet_gateway", "nat_gateways", "route_tables", "security_groups")

BUILD = "from infra.aws import network\n" + "".join(f"network.{op}()\n" for op in OPERATIONS)
TEARDOWN = "from infra.aws import network\n" + "".join(
    f"network.{op}(present=False)\n" for op in reversed(OPERATIONS)
)


@pytest.fixture(scope="module")
def ec2(moto_endpoint: str) -> Any:
    return emulator_client(moto_endpoint, "ec2")


@pytest.fixture(scope="module")
def built(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("network")
    run = run_pyinfra(workdir, emulator_data(moto_endpoint), BUILD)
    assert run.returncode == 0, run.output
    return workdir


def tagged(ec2: Any, call: str, key: str) -> list[dict[str, Any]]:
    return getattr(ec2, call)(Filters=[{"Name": f"tag:{PROJECT_TAG}", "Values": [PROJECT]}])[key]  # type: ignore[no-any-return]


def changed(run: Run) -> list[str]:
    """The operations a `--json` run changed something in."""
    assert run.returncode == 0, run.output
    return [op["name"].split()[0] for op in run.results()["results"]["operations"] if op["success"]]


def planned(run: Run) -> list[str]:
    """The operations a `--dry --json` run plans a change in."""
    assert run.returncode == 0, run.output
    return [op["name"].split()[0] for op in run.results()["plan"] if op["hosts_with_change"]]


def test_first_run_builds_subnets_in_three_zones_with_their_tags(built: Path, ec2: Any) -> None:
    subnets = {tag_dict(s["Tags"])["Name"]: s for s in tagged(ec2, "describe_subnets", "Subnets")}
    assert len(subnets) == 6
    for index, zone in enumerate(ZONES):
        public, private = subnets[f"{PROJECT}-public-{zone}"], subnets[f"{PROJECT}-private-{zone}"]
        assert (public["CidrBlock"], public["AvailabilityZone"]) == (f"10.0.{index + 4}.0/24", zone)
        assert (private["CidrBlock"], private["AvailabilityZone"]) == (f"10.0.{index + 1}.0/24", zone)
        assert public["MapPublicIpOnLaunch"]
        assert not private["MapPublicIpOnLaunch"]
        public_tags, private_tags = tag_dict(public["Tags"]), tag_dict(private["Tags"])
        assert public_tags["kubernetes.io/role/elb"] == "1"
        assert "kubernetes.io/role/internal-elb" not in public_tags
        assert private_tags["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in private_tags
        assert (
            public_tags[f"kubernetes.io/cluster/{PROJECT}"]
            == private_tags[f"kubernetes.io/cluster/{PROJECT}"]
            == "shared"
        )
    vpc = tagged(ec2, "describe_vpcs", "Vpcs")
    assert [v["CidrBlock"] for v in vpc] == ["10.0.0.0/16"]
    hostnames = ec2.describe_vpc_attribute(VpcId=vpc[0]["VpcId"], Attribute="enableDnsHostnames")
    assert hostnames["EnableDnsHostnames"]["Value"] is True


def test_first_run_routes_each_private_subnet_through_its_zones_nat(built: Path, ec2: Any) -> None:
    subnets = {s["SubnetId"]: s for s in tagged(ec2, "describe_subnets", "Subnets")}
    nats = [n for n in tagged(ec2, "describe_nat_gateways", "NatGateways") if n["State"] == "available"]
    assert len(nats) == 3
    nat_zone = {}
    for nat in nats:
        subnet = subnets[nat["SubnetId"]]
        assert tag_dict(subnet["Tags"])["Name"] == f"{PROJECT}-public-{subnet['AvailabilityZone']}"
        nat_zone[nat["NatGatewayId"]] = subnet["AvailabilityZone"]
    assert sorted(nat_zone.values()) == list(ZONES)
    assert len(tagged(ec2, "describe_addresses", "Addresses")) == 3
    [gateway] = tagged(ec2, "describe_internet_gateways", "InternetGateways")
    tables = tagged(ec2, "describe_route_tables", "RouteTables")
    assert len(tables) == 4
    for table in tables:
        defaults = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        associated = [subnets[a["SubnetId"]] for a in table["Associations"] if a.get("SubnetId")]
        if tag_dict(table["Tags"])["Name"] == f"{PROJECT}-public":
            assert defaults[0]["GatewayId"] == gateway["InternetGatewayId"]
            assert sorted(tag_dict(s["Tags"])["Name"] for s in associated) == [
                f"{PROJECT}-public-{z}" for z in ZONES
            ]
        else:
            [subnet] = associated
            assert tag_dict(subnet["Tags"])["Name"] == f"{PROJECT}-private-{subnet['AvailabilityZone']}"
            assert nat_zone[defaults[0]["NatGatewayId"]] == subnet["AvailabilityZone"]


def group_rules(ec2: Any) -> dict[str, dict[str, set[tuple[Any, ...]]]]:
    groups = tagged(ec2, "describe_security_groups", "SecurityGroups")
    names = {g["GroupId"]: tag_dict(g["Tags"])["Name"].removeprefix(f"{PROJECT}-") for g in groups}

    def rules(permissions: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
        return {
            (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), peer)
            for p in permissions
            for peer in [r["CidrIp"] for r in p["IpRanges"]]
            + [names[g["GroupId"]] for g in p["UserIdGroupPairs"]]
        }

    return {
        names[g["GroupId"]]: {"ingress": rules(g["IpPermissions"]), "egress": rules(g["IpPermissionsEgress"])}
        for g in groups
    }


def test_first_run_gives_security_groups_least_privilege_rules(built: Path, ec2: Any) -> None:
    rules = group_rules(ec2)
    assert rules["alb"]["ingress"] == {("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 443, 443, "0.0.0.0/0")}
    assert rules["alb"]["egress"] == {("tcp", 8080, 8080, "nodes")}
    assert {
        ("tcp", 8080, 8080, "alb"),
        ("tcp", 443, 443, "cluster"),
        ("tcp", 1025, 65535, "cluster"),
    } < rules["nodes"]["ingress"]
    assert len(rules["nodes"]["ingress"]) == 4
    assert [r[3] for r in rules["nodes"]["ingress"] if r[0] == "-1"] == ["nodes"]
    assert rules["cluster"]["ingress"] == {("tcp", 443, 443, "nodes")}


def test_second_run_changes_nothing(built: Path, moto_endpoint: str) -> None:
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == []


def test_drift_is_reported_by_dry_and_repaired(built: Path, moto_endpoint: str, ec2: Any) -> None:
    private = next(
        t
        for t in tagged(ec2, "describe_route_tables", "RouteTables")
        if "private" in tag_dict(t["Tags"])["Name"]
    )
    ec2.delete_route(RouteTableId=private["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    alb = next(
        g
        for g in tagged(ec2, "describe_security_groups", "SecurityGroups")
        if tag_dict(g["Tags"])["Name"].endswith("-alb")
    )
    ec2.authorize_security_group_ingress(
        GroupId=alb["GroupId"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    public = next(
        s for s in tagged(ec2, "describe_subnets", "Subnets") if "public" in tag_dict(s["Tags"])["Name"]
    )
    ec2.delete_tags(Resources=[public["SubnetId"]], Tags=[{"Key": "kubernetes.io/role/elb"}])
    ec2.create_tags(
        Resources=[public["SubnetId"]], Tags=[{"Key": "kubernetes.io/role/internal-elb", "Value": "1"}]
    )

    dry = run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--dry", "--json")
    assert planned(dry) == ["network.subnets", "network.route_tables", "network.security_groups"]

    repair = run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")
    assert changed(repair) == planned(dry)
    routes = ec2.describe_route_tables(RouteTableIds=[private["RouteTableId"]])["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("NatGatewayId") for r in routes)
    assert ("tcp", 22, 22, "0.0.0.0/0") not in group_rules(ec2)["alb"]["ingress"]
    tags = tag_dict(ec2.describe_subnets(SubnetIds=[public["SubnetId"]])["Subnets"][0]["Tags"])
    assert tags["kubernetes.io/role/elb"] == "1"
    assert "kubernetes.io/role/internal-elb" not in tags
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == []


def test_teardown_in_reverse_order_leaves_no_tagged_resource(
    built: Path, moto_endpoint: str, ec2: Any
) -> None:
    run = run_pyinfra(built, emulator_data(moto_endpoint), TEARDOWN)
    assert run.returncode == 0, run.output
    for call, key in (
        ("describe_vpcs", "Vpcs"),
        ("describe_subnets", "Subnets"),
        ("describe_internet_gateways", "InternetGateways"),
        ("describe_addresses", "Addresses"),
        ("describe_route_tables", "RouteTables"),
        ("describe_security_groups", "SecurityGroups"),
    ):
        assert tagged(ec2, call, key) == [], call
    assert [n for n in tagged(ec2, "describe_nat_gateways", "NatGateways") if n["State"] != "deleted"] == []
