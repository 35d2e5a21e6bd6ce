"""IAM (`infra.aws.iam`) and EKS (`infra.aws.eks`) operations against a real moto server through the real
pyinfra CLI, on the network of `infra.aws.network`: build, no change on a second run, drift reported by
`--dry` and repaired, teardown in reverse order; then the delivery from GitHub Actions (its OIDC provider,
shared by the account's targets, and the pipeline's roles), on targets of their own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.aws.iam import delivery_policy, drift_policy, normalised
from infra.aws.tags import PROJECT_TAG
from infra.settings import Settings
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
    "iam.cluster_autoscaler_role({present})",
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
ROLES = (
    "eks-cluster",
    "eks-node",
    "cart",
    "accounting",
    "checkout",
    "aws-load-balancer-controller",
    "cluster-autoscaler",
)


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
    for service, table in (("cart", "carts"), ("accounting", "orders"), ("checkout", "checkouts")):
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


def test_the_clusters_vpc_cni_enforces_network_policies(built: Path, moto_endpoint: str) -> None:
    eks = emulator_client(moto_endpoint, "eks")
    assert eks.list_addons(clusterName=PROJECT)["addons"] == ["vpc-cni"]
    addon = eks.describe_addon(clusterName=PROJECT, addonName="vpc-cni")["addon"]
    assert addon["status"] == "ACTIVE"
    assert json.loads(addon["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert addon["tags"][PROJECT_TAG] == PROJECT


def test_network_policy_turned_off_is_planned_and_turned_on_keeping_other_values(
    built: Path, moto_endpoint: str
) -> None:
    eks = emulator_client(moto_endpoint, "eks")
    off = {"enableNetworkPolicy": "false", "env": {"WARM_IP_TARGET": "5"}}
    eks.update_addon(clusterName=PROJECT, addonName="vpc-cni", configurationValues=json.dumps(off))

    dry = run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--dry", "--json")
    assert planned(dry) == ["eks.cluster"]
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == ["eks.cluster"]
    addon = eks.describe_addon(clusterName=PROJECT, addonName="vpc-cni")["addon"]
    assert json.loads(addon["configurationValues"]) == {**off, "enableNetworkPolicy": "true"}
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == []


def test_a_deleted_vpc_cni_add_on_is_made_again(built: Path, moto_endpoint: str) -> None:
    eks = emulator_client(moto_endpoint, "eks")
    eks.delete_addon(clusterName=PROJECT, addonName="vpc-cni")
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == ["eks.cluster"]
    addon = eks.describe_addon(clusterName=PROJECT, addonName="vpc-cni")["addon"]
    assert json.loads(addon["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_second_run_changes_nothing(built: Path, moto_endpoint: str) -> None:
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == []


def test_drift_is_reported_by_dry_and_repaired(built: Path, moto_endpoint: str) -> None:
    eks, iam = emulator_client(moto_endpoint, "eks"), emulator_client(moto_endpoint, "iam")
    group_arn = eks.describe_nodegroup(clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes")["nodegroup"][
        "nodegroupArn"
    ]
    eks.untag_resource(resourceArn=group_arn, tagKeys=[f"k8s.io/cluster-autoscaler/{PROJECT}"])
    wider = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=f"{PROJECT}-cart", PolicyName="dynamodb", PolicyDocument=json.dumps(wider))

    dry = run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--dry", "--json")
    assert planned(dry) == ["iam.service_roles", "eks.node_group"]
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == planned(dry)
    group = eks.describe_nodegroup(clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes")["nodegroup"]
    assert group["tags"][f"k8s.io/cluster-autoscaler/{PROJECT}"] == "owned"
    [grant] = iam.get_role_policy(RoleName=f"{PROJECT}-cart", PolicyName="dynamodb")["PolicyDocument"][
        "Statement"
    ]
    assert grant["Resource"] == [f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/{PROJECT}-carts"]


def test_the_cluster_autoscaler_owns_the_desired_size_and_may_scale_only_its_clusters_groups(
    built: Path, moto_endpoint: str
) -> None:
    """The deploy leaves the desired size the autoscaler set; the autoscaler's role trusts only its service
    account and may change only the groups tagged for this cluster; the node group carries those tags."""
    eks, iam = emulator_client(moto_endpoint, "eks"), emulator_client(moto_endpoint, "iam")
    eks.update_nodegroup_config(
        clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes", scalingConfig={"desiredSize": 3}
    )
    assert changed(run_pyinfra(built, emulator_data(moto_endpoint), BUILD, "--json")) == []
    group = eks.describe_nodegroup(clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes")["nodegroup"]
    assert group["scalingConfig"] == {"minSize": 1, "desiredSize": 3, "maxSize": 4}
    assert group["tags"]["k8s.io/cluster-autoscaler/enabled"] == "true"
    assert group["tags"][f"k8s.io/cluster-autoscaler/{PROJECT}"] == "owned"
    # without the autoscaler, the deploy owns the desired size again
    fixed = emulator_data(moto_endpoint, cluster_autoscaler={"enabled": False})
    assert changed(run_pyinfra(built, fixed, BUILD, "--json")) == ["eks.node_group"]
    group = eks.describe_nodegroup(clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes")["nodegroup"]
    assert group["scalingConfig"]["desiredSize"] == 2

    role = iam.get_role(RoleName=f"{PROJECT}-cluster-autoscaler")["Role"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    [subject] = [v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert subject == "system:serviceaccount:kube-system:cluster-autoscaler"
    policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="cluster-autoscaler")["PolicyDocument"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    scale = statements["ScaleOwnScalingGroups"]
    assert sorted(scale["Action"]) == [
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    assert scale["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{PROJECT}": "owned"}
    }
    reads = statements["DescribeScalingGroups"]["Action"]
    assert all(a.startswith(("autoscaling:Describe", "ec2:Describe")) for a in reads), reads
    assert statements["DescribeOwnNodeGroups"]["Resource"] == [
        f"arn:aws:eks:us-east-1:{ACCOUNT_ID}:nodegroup/{PROJECT}/*/*"
    ]
    every = {a for s in policy["Statement"] for a in s["Action"]}
    assert every == {*reads, "eks:DescribeNodegroup", *scale["Action"]}


def test_new_sizes_are_applied_and_a_new_instance_type_is_refused(built: Path, moto_endpoint: str) -> None:
    bigger = emulator_data(moto_endpoint, node_group={"min_size": 2, "desired_size": 3, "max_size": 5})
    assert changed(run_pyinfra(built, bigger, BUILD, "--json")) == ["eks.node_group"]
    group = emulator_client(moto_endpoint, "eks").describe_nodegroup(
        clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes"
    )
    # min and max are the settings'; the desired size stays the autoscaler's (2 here), inside them
    assert group["nodegroup"]["scalingConfig"] == {"minSize": 2, "desiredSize": 2, "maxSize": 5}
    smaller = emulator_data(moto_endpoint, node_group={"min_size": 3, "desired_size": 3, "max_size": 5})
    assert changed(run_pyinfra(built, smaller, BUILD, "--json")) == ["eks.node_group"]
    group = emulator_client(moto_endpoint, "eks").describe_nodegroup(
        clusterName=PROJECT, nodegroupName=f"{PROJECT}-nodes"
    )
    assert group["nodegroup"]["scalingConfig"] == {"minSize": 3, "desiredSize": 3, "maxSize": 5}

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


# ---------------------------------------------------------------------------------------------- GitHub

GITHUB_STEPS = ("iam.github_oidc_provider({present})", "iam.delivery_roles({present})")
GITHUB_DEPLOY = PREAMBLE + "".join(step.format(present="") + "\n" for step in GITHUB_STEPS)
GITHUB_TEARDOWN = PREAMBLE + "".join(
    step.format(present="present=False") + "\n" for step in reversed(GITHUB_STEPS)
)
REPOSITORY = "acme/shopstack"
GITHUB_PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/token.actions.githubusercontent.com"


def delivered(moto_endpoint: str, environment: str) -> dict[str, Any]:
    """Host data of the target `shop-<environment>`, delivered from REPOSITORY's `environment`."""
    return emulator_data(
        moto_endpoint,
        project=f"shop-{environment}",
        github_repository=REPOSITORY,
        github_environment=environment,
    )


def github_providers(moto_endpoint: str) -> list[str]:
    listed = emulator_client(moto_endpoint, "iam").list_open_id_connect_providers()
    return [p["Arn"] for p in listed["OpenIDConnectProviderList"] if p["Arn"] == GITHUB_PROVIDER_ARN]


def test_without_a_repository_there_is_no_provider_and_no_pipeline_role(
    moto_endpoint: str, tmp_path: Path
) -> None:
    data = emulator_data(moto_endpoint, project="shop-nogithub")
    assert changed(run_pyinfra(tmp_path, data, GITHUB_DEPLOY, "--json")) == []
    assert github_providers(moto_endpoint) == []
    names = {r["RoleName"] for r in emulator_client(moto_endpoint, "iam").list_roles()["Roles"]}
    assert not {"shop-nogithub-deliver", "shop-nogithub-drift"} & names


def test_github_delivery_trusts_only_the_environment_and_the_branch_with_the_declared_policies(
    moto_endpoint: str, tmp_path: Path
) -> None:
    data = delivered(moto_endpoint, "staging")
    first = run_pyinfra(tmp_path, data, GITHUB_DEPLOY, "--json")
    assert changed(first) == ["iam.github_oidc_provider", "iam.delivery_roles"]
    iam = emulator_client(moto_endpoint, "iam")
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=GITHUB_PROVIDER_ARN)
    assert provider["Url"].removeprefix("https://") == "token.actions.githubusercontent.com"
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]

    settings = Settings.parse(data)
    subjects = {
        "shop-staging-deliver": f"repo:{REPOSITORY}:environment:staging",
        "shop-staging-drift": f"repo:{REPOSITORY}:ref:refs/heads/main",
    }
    policies = {
        "shop-staging-deliver": delivery_policy(settings),
        "shop-staging-drift": drift_policy(settings),
    }
    for role, subject in subjects.items():
        [statement] = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Federated": GITHUB_PROVIDER_ARN}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"] == {
            "StringEquals": {
                "token.actions.githubusercontent.com:sub": subject,
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            }
        }
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
        [policy_name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        assert normalised(document) == normalised(policies[role])

    assert iam.get_role(RoleName="shop-staging-deliver")["Role"]["MaxSessionDuration"] == 4 * 3600
    drift_actions = {a for s in policies["shop-staging-drift"]["Statement"] for a in s["Action"]}
    assert not {
        a for a in drift_actions if ":" in a and a.split(":")[1].startswith(("Create", "Put", "Delete"))
    }
    deliver = policies["shop-staging-deliver"]["Statement"]
    unscoped = {a for s in deliver if s["Resource"] == ["*"] and "Condition" not in s for a in s["Action"]}
    assert all(a.split(":")[1].startswith(("Describe", "List", "GetAuthorizationToken")) for a in unscoped)
    assert changed(run_pyinfra(tmp_path, data, GITHUB_DEPLOY, "--json")) == []


def test_a_widened_trust_is_planned_by_dry_and_repaired(moto_endpoint: str, tmp_path: Path) -> None:
    data = delivered(moto_endpoint, "staging")
    assert run_pyinfra(tmp_path, data, GITHUB_DEPLOY).returncode == 0
    iam = emulator_client(moto_endpoint, "iam")
    wide = iam.get_role(RoleName="shop-staging-deliver")["Role"]["AssumeRolePolicyDocument"]
    wide["Statement"][0]["Condition"] = {
        "StringLike": {"token.actions.githubusercontent.com:sub": f"repo:{REPOSITORY}:*"}
    }
    iam.update_assume_role_policy(RoleName="shop-staging-deliver", PolicyDocument=json.dumps(wide))

    assert planned(run_pyinfra(tmp_path, data, GITHUB_DEPLOY, "--dry", "--json")) == ["iam.delivery_roles"]
    assert changed(run_pyinfra(tmp_path, data, GITHUB_DEPLOY, "--json")) == ["iam.delivery_roles"]
    [statement] = iam.get_role(RoleName="shop-staging-deliver")["Role"]["AssumeRolePolicyDocument"][
        "Statement"
    ]
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        f"repo:{REPOSITORY}:environment:staging"
    )


def test_the_shared_provider_outlives_one_target_and_goes_with_the_last(
    moto_endpoint: str, tmp_path: Path
) -> None:
    staging, production = delivered(moto_endpoint, "staging"), delivered(moto_endpoint, "production")
    for data in (staging, production):
        assert run_pyinfra(tmp_path, data, GITHUB_DEPLOY).returncode == 0
    iam = emulator_client(moto_endpoint, "iam")

    removed = run_pyinfra(tmp_path, staging, GITHUB_TEARDOWN, "--json")
    assert changed(removed) == ["iam.delivery_roles"]
    assert github_providers(moto_endpoint) == [GITHUB_PROVIDER_ARN]
    names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert not {"shop-staging-deliver", "shop-staging-drift"} & names
    assert {"shop-production-deliver", "shop-production-drift"} <= names

    last = run_pyinfra(tmp_path, production, GITHUB_TEARDOWN, "--json")
    assert changed(last) == ["iam.delivery_roles", "iam.github_oidc_provider"]
    assert github_providers(moto_endpoint) == []
    assert changed(run_pyinfra(tmp_path, production, GITHUB_TEARDOWN, "--json")) == []


def test_the_emulators_add_on_api_answers_as_eks_does(moto_endpoint: str) -> None:
    """moto has no add-ons: the local cloud's emulator serves them with EKS's shapes and errors."""
    eks = emulator_client(moto_endpoint, "eks")
    vpc = {"subnetIds": ["subnet-1", "subnet-2"]}
    eks.create_cluster(name="addons", roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/r", resourcesVpcConfig=vpc)

    def error(call: Any, **kwargs: Any) -> tuple[str, int, str]:
        with pytest.raises(eks.exceptions.ClientError) as caught:
            call(**kwargs)
        response = caught.value.response
        return (
            response["Error"]["Code"],
            response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"],
        )

    assert error(eks.describe_addon, clusterName="nowhere", addonName="vpc-cni")[:2] == (
        "ResourceNotFoundException",
        404,
    )
    assert error(eks.describe_addon, clusterName="addons", addonName="vpc-cni") == (
        "ResourceNotFoundException",
        404,
        "No addon: vpc-cni found in cluster: addons",
    )
    assert error(eks.create_addon, clusterName="addons", addonName="no-such-addon")[:2] == (
        "InvalidParameterException",
        400,
    )
    assert error(
        eks.create_addon, clusterName="addons", addonName="vpc-cni", configurationValues="[not, an, object]"
    )[:2] == ("InvalidParameterException", 400)

    made = eks.create_addon(
        clusterName="addons",
        addonName="vpc-cni",
        configurationValues="enableNetworkPolicy: 'true'",  # YAML is accepted as well as JSON
        resolveConflicts="OVERWRITE",
        tags={"team": "shop"},
    )["addon"]
    assert (made["addonName"], made["clusterName"], made["status"]) == ("vpc-cni", "addons", "ACTIVE")
    assert made["addonArn"].startswith(f"arn:aws:eks:us-east-1:{ACCOUNT_ID}:addon/addons/vpc-cni/")
    assert made["addonVersion"].startswith("v1.")
    assert made["health"] == {"issues": []}
    assert made["tags"] == {"team": "shop"}
    assert made["createdAt"] <= made["modifiedAt"]
    assert error(eks.create_addon, clusterName="addons", addonName="vpc-cni") == (
        "ResourceInUseException",
        409,
        "Addon already exists.",
    )

    update = eks.update_addon(
        clusterName="addons", addonName="vpc-cni", configurationValues='{"enableNetworkPolicy": "false"}'
    )["update"]
    assert update["type"] == "AddonUpdate"
    assert update["errors"] == []
    assert update["params"] == [{"type": "ConfigurationValues", "value": '{"enableNetworkPolicy": "false"}'}]
    described = eks.describe_addon(clusterName="addons", addonName="vpc-cni")["addon"]
    assert described["configurationValues"] == '{"enableNetworkPolicy": "false"}'
    assert error(
        eks.update_addon,
        clusterName="addons",
        addonName="vpc-cni",
        configurationValues='{"enableNetworkPolicy": 1}',
    )[:2] == ("InvalidParameterException", 400)

    eks.create_addon(clusterName="addons", addonName="coredns")
    eks.create_addon(clusterName="addons", addonName="kube-proxy")
    first = eks.list_addons(clusterName="addons", maxResults=2)
    assert first["addons"] == ["coredns", "kube-proxy"]
    assert eks.list_addons(clusterName="addons", nextToken=first["nextToken"])["addons"] == ["vpc-cni"]

    assert eks.delete_addon(clusterName="addons", addonName="coredns")["addon"]["status"] == "DELETING"
    assert eks.list_addons(clusterName="addons")["addons"] == ["kube-proxy", "vpc-cni"]
    eks.delete_cluster(name="addons")
    eks.create_cluster(name="addons", roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/r", resourcesVpcConfig=vpc)
    assert eks.list_addons(clusterName="addons")["addons"] == []  # the add-ons went with their cluster
    eks.delete_cluster(name="addons")
