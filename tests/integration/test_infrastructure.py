"""What the deploy declared is what the stage holds, read back through the stage's own AWS and Kubernetes
APIs: the network, the node group, the tables, the repositories, the ALB's rules and targets, and every
Kubernetes object the model renders."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Node, Pod

from infra.aws.ecr import repository_name
from infra.aws.eks import node_group_name
from infra.aws.network import nat_name, private_route_table_name, subnet_name, vpc_name
from infra.k8s.facts import resource_class
from infra.model import PRUNE_LABEL, PRUNE_VALUE, SERVICE_NAMES
from infra.model.common import Obj
from infra.settings import Settings
from tests.integration.stages import Stage

NAME_LABEL = "app.kubernetes.io/name"


def by_name(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    named = {}
    for resource in resources:
        tags = {t["Key"]: t["Value"] for t in resource.get("Tags") or []}
        if "Name" in tags:
            named[tags["Name"]] = resource
    return named


@pytest.fixture(scope="module")
def settings(stage: Stage) -> Settings:
    return stage.settings


@pytest.fixture(scope="module")
def ec2(stage: Stage) -> Any:
    return stage.aws("ec2")


@pytest.fixture(scope="module")
def vpc(ec2: Any, settings: Settings) -> dict[str, Any]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [vpc_name(settings.project)]}])["Vpcs"]
    assert len(vpcs) == 1, f"{len(vpcs)} VPCs named {vpc_name(settings.project)}"
    return vpcs[0]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def subnets(ec2: Any, vpc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    return by_name(found)


def test_the_vpc_has_a_public_and_a_private_subnet_in_each_of_three_zones(
    vpc: dict[str, Any], subnets: dict[str, dict[str, Any]], settings: Settings
) -> None:
    assert vpc["CidrBlock"] == str(settings.vpc_cidr)
    assert len(settings.zones) == 3
    for zone, private, public in zip(
        settings.zones, settings.private_subnets, settings.public_subnets, strict=True
    ):
        for tier, cidr in (("private", private), ("public", public)):
            subnet = subnets[subnet_name(settings.project, tier, zone)]
            assert (subnet["CidrBlock"], subnet["AvailabilityZone"]) == (str(cidr), zone)
            assert subnet["MapPublicIpOnLaunch"] is (tier == "public"), f"{tier} subnet in {zone}"


def test_each_zone_has_its_own_nat_gateway_and_its_private_subnet_routes_out_through_it(
    ec2: Any, vpc: dict[str, Any], subnets: dict[str, dict[str, Any]], settings: Settings
) -> None:
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    nats = by_name(
        ec2.describe_nat_gateways(Filters=[*vpc_filter, {"Name": "state", "Values": ["available"]}])[
            "NatGateways"
        ]
    )
    tables = by_name(ec2.describe_route_tables(Filters=vpc_filter)["RouteTables"])
    for zone in settings.zones:
        nat = nats[nat_name(settings.project, zone)]
        assert nat["SubnetId"] == subnets[subnet_name(settings.project, "public", zone)]["SubnetId"]
        table = tables[private_route_table_name(settings.project, zone)]
        default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert [r.get("NatGatewayId") for r in default] == [nat["NatGatewayId"]], f"private route in {zone}"
        associated = {a.get("SubnetId") for a in table["Associations"]}
        assert subnets[subnet_name(settings.project, "private", zone)]["SubnetId"] in associated


def test_the_node_group_has_the_declared_type_and_sizes_and_the_cluster_its_nodes(
    stage: Stage, settings: Settings
) -> None:
    group = stage.aws("eks").describe_nodegroup(
        clusterName=settings.cluster_name, nodegroupName=node_group_name(settings)
    )["nodegroup"]
    declared = settings.node_group
    assert group["instanceTypes"] == [declared.instance_type]
    scaling = group["scalingConfig"]
    assert (scaling["minSize"], scaling["maxSize"]) == (declared.min_size, declared.max_size)
    cluster = stage.aws("eks").describe_cluster(name=settings.cluster_name)["cluster"]
    assert cluster["version"] == settings.kubernetes_version
    if stage.nodes_follow_node_group:
        assert len(list(stage.kube().list(Node))) == scaling["desiredSize"]


def test_the_tables_are_encrypted_with_point_in_time_recovery(stage: Stage, settings: Settings) -> None:
    dynamodb = stage.aws("dynamodb")
    for table in (settings.carts_table, settings.orders_table):
        description = dynamodb.describe_table(TableName=table)["Table"]
        assert description["TableStatus"] == "ACTIVE"
        assert description["SSEDescription"]["Status"] == "ENABLED", f"{table} is not encrypted"
        backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_every_service_has_a_repository_scanning_on_push_with_immutable_tags(
    stage: Stage, settings: Settings
) -> None:
    names = [repository_name(settings, service) for service in SERVICE_NAMES]
    repositories = stage.aws("ecr").describe_repositories(repositoryNames=names)["repositories"]
    assert sorted(r["repositoryName"] for r in repositories) == sorted(names)
    for repository in repositories:
        assert repository["imageScanningConfiguration"]["scanOnPush"] is True
        assert repository["imageTagMutability"] == "IMMUTABLE"


def test_the_alb_forwards_to_the_ready_frontend_proxy_pods(stage: Stage) -> None:
    if not stage.has_alb:
        pytest.skip(f"the {stage.name} stage has no load balancer controller")
    elbv2 = stage.aws("elbv2")
    balancers = [b for b in elbv2.describe_load_balancers()["LoadBalancers"] if b["Type"] == "application"]
    assert len(balancers) == 1, [b["LoadBalancerName"] for b in balancers]
    balancer = balancers[0]
    assert balancer["Scheme"] == "internet-facing"
    listeners = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert [listener["Port"] for listener in listeners] == [80]
    groups = elbv2.describe_target_groups(LoadBalancerArn=balancer["LoadBalancerArn"])["TargetGroups"]
    # one target group per colour of frontend-proxy (the idle colour's is empty), pods as IP targets
    assert [g["TargetType"] for g in groups] == ["ip", "ip"]
    targets = [
        target
        for group in groups
        for target in elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])[
            "TargetHealthDescriptions"
        ]
        if target["TargetHealth"]["State"] != "draining"
    ]
    pods = stage.kube().list(Pod, namespace=stage.namespace, labels={NAME_LABEL: "frontend-proxy"})
    pod_ips = {p.status.podIP for p in pods if p.status and p.metadata and not p.metadata.deletionTimestamp}
    assert {t["Target"]["Id"] for t in targets} == pod_ips


def live(kube: Client, obj: Obj) -> Obj | None:
    kind = resource_class(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    try:
        found = kube.get(kind, meta["name"], namespace=meta.get("namespace"))
    except ApiError as err:
        if err.status.code == 404:
            return None
        raise
    return found.to_dict()  # type: ignore[no-any-return]


def test_the_cluster_holds_every_declared_kubernetes_object_as_declared(stage: Stage) -> None:
    kube = stage.kube()
    missing, different = [], []
    for obj in stage.declared_objects():
        found = live(kube, obj)
        key = f"{obj['kind']} {obj['metadata']['name']}"
        if found is None:
            missing.append(key)
            continue
        if obj["kind"] in ("Deployment", "StatefulSet"):
            declared = [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]]
            running = [c["image"] for c in found["spec"]["template"]["spec"]["containers"]]
            if declared != running:
                different.append(f"{key}: images {running}, declared {declared}")
        if found["metadata"].get("labels", {}).get(PRUNE_LABEL) != PRUNE_VALUE:
            different.append(f"{key}: not labelled for prune")
    assert missing == [], f"declared but absent: {missing}"
    assert different == []
