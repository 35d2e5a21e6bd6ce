"""IAM (`infra.aws.iam`) and EKS (`infra.aws.eks`) operations against a real moto server through the real
pyinfra CLI, on the network of `infra.aws.network`: build, no change on a second run, drift reported by
`--dry` and repaired, teardown in reverse order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.aws.tags import PROJECT_TAG
from tests.support.pyinfra_run import ACCOUNT_ID, Run, emulator_client, emulator_data, run_pyinfra

PROJECT = "shopstack"
NETWORK = ("vpc", "subnets", "internet_gateway", "nat_gateways", "route_tables", "security_groups")
STEPS = (
    "iam.cluster_role({present})",
    "iam.node_role({present})",
    "eks.cluster({present})",
    "iam.oidc_provider({present})",
    "iam.service_roles(iam.dynamodb_grants(settings){comma}{present})",
    "iam.load_balancer_controller_role({present})",
    "eks.node_group({present})",
)
PREAMBLE = (
    "from pyinfra.context import host\n"
    "from infra.aws import eks, iam, network\n"
    "from infra.cloud import cloud_of\n"
    "settings = cloud_of(host).settings\n"
)
BUILD = (
    PREAMBLE
    + "".join(f"network.{op}()\n" for op in NETWORK)
    + "".join(step.format(present="", comma="") + "\n" for step in STEPS)
)
TEARDOWN = (
    PREAMBLE
    + "".join(step.format(present="present=False", comma=", ") + "\n" for step in reversed(STEPS))
    + "".join(f"network.{op}(present=False)\n" for op in reversed(NETWORK))
)
ROLES = ("eks-cluster", "eks-node", "cart", "accounting", "aws-load-balancer-controller")


@pytest.fixture(scope="module")
def built(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("iam_eks")
    run = run_pyinfra(workdir, emulator_data(moto_endpoint), BUILD)
    assert run.returncode == 0, run.output
    return workdir


def changed(run: Run) -> list[str]:
    """The operations a `--json` run changed something in."""
    assert run.returncode == 0, run.output
    return [op["name"].split()[0] for op in run.results()["results"]["operations"] if op["success"]]


def planned(run: Run) -> list[str]:
    """The operations a `--dry --json` run plans a change in."""
    assert run.returncode == 0, run.output
    return [op["name"].split()[0] for op in run.results()["plan"] if op["hosts_with_change"]]


def test_plan_without_a_cluster_creates_everything(moto_endpoint: str, tmp_path: Path) -> None:
    dry = run_pyinfra(tmp_path, emulator_data(moto_endpoint), BUILD, "--dry", "--json", name="plan")
    assert len(planned(dry)) == len(NETWORK) + len(STEPS)


def test_cluster_and_node_roles_have_their_managed_policies(built: Path, moto_endpoint: str) -> None:
    iam = emulator_client(moto_endpoint, "iam")

    def attached(role: str) -> set[str]:
        policies = iam.list_attached_role_policies(RoleName=f"{PROJECT}-{role}")["AttachedPolicies"]
        return {p["PolicyName"] for p in policies}

    assert attached("eks-cluster") == {"AmazonEKSClusterPolicy"}
    assert attached("eks-node") == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
    }
    trust = iam.get_role(RoleName=f"{PROJECT}-eks-cluster")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}


def test_service_roles_trust_only_their_service_account_and_reach_only_their_table(
    built: Path, moto_endpoint: str
) -> None:
    iam = emulator_client(moto_endpoint, "iam")
    issuer = emulator_client(moto_endpoint, "eks").describe_cluster(name=PROJECT)["cluster"]["identity"][
        "oidc"
    ]["issuer"]
    issuer_host = issuer.removeprefix("https://")
    [provider] = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert provider["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{issuer_host}"
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])["ClientIDList"] == [
        "sts.amazonaws.com"
    ]
    for service, table in (("cart", "carts"), ("accounting", "orders")):
        role = f"{PROJECT}-{service}"
        [statement] = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Federated": provider["Arn"]}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"]["StringEquals"] == {
            f"{issuer_host}:sub": f"system:serviceaccount:{PROJECT}:{service}",
            f"{issuer_host}:aud": "sts.amazonaws.com",
        }
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
        [grant] = iam.get_role_policy(RoleName=role, PolicyName="dynamodb")["PolicyDocument"]["Statement"]
        assert grant["Resource"] == [f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/{PROJECT}-{table}"]
        assert all(action.startswith("dynamodb:") for action in grant["Action"])
        assert "dynamodb:Scan" not in grant["Action"]
    accounting = iam.get_role_policy(RoleName=f"{PROJECT}-accounting", PolicyName="dynamodb")
    assert sorted(accounting["PolicyDocument"]["Statement"][0]["Action"]) == [
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    ]
    controller = iam.get_role_policy(
        RoleName=f"{PROJECT}-aws-load-balancer-controller", PolicyName="load-balancer-controller"
    )
    actions = {a for s in controller["PolicyDocument"]["Statement"] for a in s["Action"]}
    assert "elasticloadbalancing:CreateLoadBalancer" in actions


def test_cluster_is_in_the_private_subnets_at_1_30_with_its_node_group(
    built: Path, moto_endpoint: str
) -> None:
    ec2, eks = emulator_client(moto_endpoint, "ec2"), emulator_client(moto_endpoint, "eks")
    cluster = eks.describe_cluster(name=PROJECT)["cluster"]
    assert (cluster["status"], cluster["version"]) == ("ACTIVE", "1.30")
    subnets = ec2.describe_subnets(SubnetIds=cluster["resourcesVpcConfig"]["subnetIds"])["Subnets"]
    names = sorted(t["Value"] for s in subnets for t in s["Tags"] if t["Key"] == "Name")
    assert names == [f"{PROJECT}-private-us-east-1{z}" for z in "abc"]
    assert cluster["roleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{PROJECT}-eks-cluster"
    assert cluster["encryptionConfig"][0]["resources"] == ["secrets"]
    group = eks.describe_nodegroup(clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes")["nodegroup"]
    assert group["scalingConfig"] == {"minSize": 1, "desiredSize": 2, "maxSize": 4}
    assert (group["instanceTypes"], group["version"]) == (["t3.medium"], "1.30")
    assert sorted(group["subnets"]) == sorted(cluster["resourcesVpcConfig"]["subnetIds"])


def test_second_run_changes_nothing(built: Path, moto_endpoint: str) -> None:
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == []


def test_drift_is_reported_by_dry_and_repaired(built: Path, moto_endpoint: str) -> None:
    eks, iam = emulator_client(moto_endpoint, "eks"), emulator_client(moto_endpoint, "iam")
    eks.update_nodegroup_config(
        clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes", scalingConfig={"desiredSize": 3}
    )
    wider = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=f"{PROJECT}-cart", PolicyName="dynamodb", PolicyDocument=json.dumps(wider))

    dry = run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--dry", "--json")
    assert planned(dry) == ["iam.service_roles", "eks.node_group"]
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == planned(dry)
    group = eks.describe_nodegroup(clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes")["nodegroup"]
    assert group["scalingConfig"]["desiredSize"] == 2
    [grant] = iam.get_role_policy(RoleName=f"{PROJECT}-cart", PolicyName="dynamodb")["PolicyDocument"][
        "Statement"
    ]
    assert grant["Resource"] == [f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/{PROJECT}-carts"]


def test_new_sizes_are_applied_and_a_new_instance_type_is_refused(built: Path, moto_endpoint: str) -> None:
    bigger = emulator_data(moto_endpoint, node_group={"min_size": 2, "desired_size": 3, "max_size": 5})
    assert changed(run_pyinfra(built, bigger, BUILD, "--json")) == ["eks.node_group"]
    group = emulator_client(moto_endpoint, "eks").describe_nodegroup(
        clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes"
    )
    assert group["nodegroup"]["scalingConfig"] == {"minSize": 2, "desiredSize": 3, "maxSize": 5}

    larger = emulator_data(moto_endpoint, node_group={"instance_type": "t3.large"})
    refused = run_pyinfra(built, larger, BUILD)
    assert refused.returncode != 0
    assert "cannot change a node group's instance type in place" in refused.output
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == ["eks.node_group"]


def test_teardown_in_reverse_order_leaves_no_role_cluster_or_tagged_resource(
    built: Path, moto_endpoint: str
) -> None:
    run = run_pyinfra(built, emulator_data(moto_endpoint), TEARDOWN)
    assert run.returncode == 0, run.output
    eks, iam, ec2 = (
        emulator_client(moto_endpoint, "eks"),
        emulator_client(moto_endpoint, "iam"),
        emulator_client(moto_endpoint, "ec2"),
    )
    assert eks.list_clusters()["clusters"] == []
    names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert names.isdisjoint(f"{PROJECT}-{role}" for role in ROLES)
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    by_project = [{"Name": f"tag:{PROJECT_TAG}", "Values": [PROJECT]}]
    assert ec2.describe_vpcs(Filters=by_project)["Vpcs"] == []
    assert ec2.describe_security_groups(Filters=by_project)["SecurityGroups"] == []
    assert ec2.describe_addresses(Filters=by_project)["Addresses"] == []
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), TEARDOWN, "--json")) == []
