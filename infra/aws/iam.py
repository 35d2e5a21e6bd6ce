"""IAM for the cluster: the EKS cluster and node roles with their AWS-managed policies, the cluster's OIDC
provider, and the per-service roles (IRSA) that let a pod's service account, and only it, act on its own
DynamoDB table; plus the AWS Load Balancer Controller's role (`policies/aws-load-balancer-controller.json`,
its source in `policies/README.md`).

Policies compare as documents (`normalised`: keys sorted, single actions and resources as lists), so a
second run changes nothing and a hand edit is repaired. A trust policy that names the OIDC provider needs
the cluster's issuer: at plan time without a cluster the plan says the role will be created, and the
command reads the issuer when it runs (after `infra.aws.eks.cluster`).

Delivery from GitHub Actions (when the settings name `github_repository`): GitHub's OIDC provider, one per
account and shared by every target in it (removed only once no role trusts it), and two roles that only
GitHub's tokens for that repository can assume: `<project>-deliver`, for the jobs of the GitHub environment
`github_environment` (token subject `repo:<owner/name>:environment:<env>`), allowed what the deploy does;
and `<project>-drift`, for the jobs on `github_branch` that name no environment (the scheduled drift check,
which must not wait for an environment's reviewers), allowed only what the deploy reads (`--dry`).
`delivery_policy` says where AWS cannot scope an action to the project.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
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
from infra.model.cluster_autoscaler import cluster_tag
from infra.settings import Settings

POLICIES = Path(__file__).with_name("policies")
MANAGED = "arn:aws:iam::aws:policy/"
CLUSTER_POLICIES = (f"{MANAGED}AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    f"{MANAGED}AmazonEKSWorkerNodePolicy",
    f"{MANAGED}AmazonEKS_CNI_Policy",
    f"{MANAGED}AmazonEC2ContainerRegistryReadOnly",
)
STS_AUDIENCE = "sts.amazonaws.com"
#: IAM verifies EKS issuers against its own trusted CAs and does not use the thumbprint; the API still
#: keeps a list, and this is the root CA thumbprint commonly given for EKS issuers
EKS_OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
LOAD_BALANCER_CONTROLLER = ("kube-system", "aws-load-balancer-controller")
CLUSTER_AUTOSCALER = ("kube-system", "cluster-autoscaler")
#: what the cluster autoscaler reads to discover and model its Auto Scaling groups: no resource-level
#: permissions exist for these (they read metadata only)
CLUSTER_AUTOSCALER_DESCRIBE = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
)
#: what it changes, on the Auto Scaling groups of its own cluster only
CLUSTER_AUTOSCALER_SCALE = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
)

#: what each service calls on its table: `services/cart/store.py` (describe_table for readiness, get,
#: put, update and delete of a user's cart), `services/accounting/ledger.py` (conditional put, get,
#: and `Table.load()`, a DescribeTable, for readiness) and `services/checkout/idempotency.py`
#: (describe_table for readiness; conditional put, get, update and delete of a checkout's key)
SERVICE_TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "cart": ("DescribeTable", "GetItem", "PutItem", "UpdateItem", "DeleteItem"),
    "accounting": ("DescribeTable", "GetItem", "PutItem"),
    "checkout": ("DescribeTable", "GetItem", "PutItem", "UpdateItem", "DeleteItem"),
}

#: who may assume a role: {"service": "eks.amazonaws.com"}, {"service_account": "namespace:name"} or
#: {"github": "<token subject>"}
TrustSpec = dict[str, str]
#: a role's wanted state, as the operations compare it
Grants = Mapping[str, tuple[str, Sequence[str]]]


# ---------------------------------------------------------------------------------------------- names


def role_arn(settings: Settings, role_name: str) -> str:
    """The ARN of role `role_name` in the deploy's account (for the model's IRSA annotations)."""
    return f"arn:aws:iam::{settings.account_id}:role/{role_name}"


def cluster_role_name(settings: Settings) -> str:
    return f"{settings.project}-eks-cluster"


def node_role_name(settings: Settings) -> str:
    return f"{settings.project}-eks-node"


def service_role_name(settings: Settings, service: str) -> str:
    return f"{settings.project}-{service}"


def load_balancer_controller_role_name(settings: Settings) -> str:
    return f"{settings.project}-{LOAD_BALANCER_CONTROLLER[1]}"


def cluster_autoscaler_role_name(settings: Settings) -> str:
    return f"{settings.project}-{CLUSTER_AUTOSCALER[1]}"


def dynamodb_grants(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """The `grants` of `service_roles` for the shop: each service, its table and the actions it calls."""
    tables = {
        "cart": settings.carts_table,
        "accounting": settings.orders_table,
        "checkout": settings.checkouts_table,
    }
    return {service: (tables[service], list(actions)) for service, actions in SERVICE_TABLE_ACTIONS.items()}


# ---------------------------------------------------------------------------------------------- documents


LISTED = ("Action", "NotAction", "Resource", "NotResource")


def normalised(document: Any) -> str:
    """A policy document as canonical JSON: equal policies give equal text however they are spelled."""

    def canonical(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: canonical(v, k) for k, v in sorted(value.items())}
        if key in LISTED:
            return sorted(value) if isinstance(value, list) else [value]
        if isinstance(value, list):
            return [canonical(v) for v in value]
        return value

    if isinstance(document, str):
        document = json.loads(document)
    return json.dumps(canonical(document), sort_keys=True, separators=(",", ":"))


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _issuer_host(issuer: str) -> str:
    return issuer.removeprefix("https://")


def _provider_arn(settings: Settings, issuer: str) -> str:
    return f"arn:aws:iam::{settings.account_id}:oidc-provider/{_issuer_host(issuer)}"


def trust_document(settings: Settings, spec: TrustSpec, issuer: str | None) -> dict[str, Any] | None:
    """The trust policy `spec` asks for; None when it needs the cluster's issuer and there is none (yet)."""
    if "service" in spec:
        principal: dict[str, Any] = {"Service": spec["service"]}
        return _document([{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}])
    if "github" in spec:
        return github_trust_document(settings, spec["github"])
    if issuer is None:
        return None
    namespace, _, account = spec["service_account"].partition(":")
    issuer_host = _issuer_host(issuer)
    return _document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": _provider_arn(settings, issuer)},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer_host}:sub": f"system:serviceaccount:{namespace}:{account}",
                        f"{issuer_host}:aud": STS_AUDIENCE,
                    }
                },
            }
        ]
    )


def table_policy(settings: Settings, table_name: str, actions: Sequence[str]) -> dict[str, Any]:
    """Only `actions` (DynamoDB action names, `GetItem` or `dynamodb:GetItem`), only on table `table_name`."""
    table_arn = f"arn:aws:dynamodb:{settings.region}:{settings.account_id}:table/{table_name}"
    names = sorted({f"dynamodb:{a.removeprefix('dynamodb:')}" for a in actions})
    return _document([{"Effect": "Allow", "Action": names, "Resource": [table_arn]}])


def load_balancer_controller_policy() -> dict[str, Any]:
    return json.loads((POLICIES / "aws-load-balancer-controller.json").read_text())  # type: ignore[no-any-return]


def cluster_autoscaler_policy(settings: Settings) -> dict[str, Any]:
    """The cluster autoscaler's least privilege, as upstream's AWS docs recommend it: describe the Auto
    Scaling groups, their launch templates and instance types (and this cluster's node groups, for their
    labels and taints); set the desired capacity and terminate instances only in the groups tagged
    `k8s.io/cluster-autoscaler/<cluster>=owned` (EKS tags its managed node groups' groups so)."""
    arn = f"{settings.region}:{settings.account_id}"
    return _document(
        [
            {
                "Sid": "DescribeScalingGroups",
                "Effect": "Allow",
                "Action": sorted(CLUSTER_AUTOSCALER_DESCRIBE),
                "Resource": ["*"],
            },
            {
                "Sid": "DescribeOwnNodeGroups",
                "Effect": "Allow",
                "Action": ["eks:DescribeNodegroup"],
                "Resource": [f"arn:aws:eks:{arn}:nodegroup/{settings.cluster_name}/*/*"],
            },
            {
                "Sid": "ScaleOwnScalingGroups",
                "Effect": "Allow",
                "Action": sorted(CLUSTER_AUTOSCALER_SCALE),
                "Resource": ["*"],
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{cluster_tag(settings.cluster_name)}": "owned"}
                },
            },
        ]
    )


def _issuer(cloud: Cloud) -> str | None:
    try:
        cluster = cloud.client("eks").describe_cluster(name=cloud.settings.cluster_name)["cluster"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
    return str(issuer) if issuer else None


# ---------------------------------------------------------------------------------------------- facts


class Role(ApiFact[dict[str, Any] | None]):
    """A role's trust policy and inline policies (normalised), attached managed policy ARNs and tags; None
    when there is no such role."""

    def command(self, role_name: str) -> str:
        return self.request(role_name=role_name)

    def read(self, cloud: Cloud, role_name: str) -> dict[str, Any] | None:  # type: ignore[override]
        iam = cloud.client("iam")
        try:
            role = iam.get_role(RoleName=role_name)["Role"]
        except ClientError as err:
            if err.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise
        attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        inline = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        return {
            "arn": role["Arn"],
            "trust": normalised(role["AssumeRolePolicyDocument"]),
            "managed": sorted(p["PolicyArn"] for p in attached),
            "inline": {
                policy: normalised(
                    iam.get_role_policy(RoleName=role_name, PolicyName=policy)["PolicyDocument"]
                )
                for policy in inline
            },
            "tags": tag_dict(role.get("Tags")),
            "max_session_seconds": role.get("MaxSessionDuration", 3600),
        }


class OidcProvider(ApiFact[dict[str, Any]]):
    """The cluster's OIDC issuer (None while there is no cluster) and the project's OIDC providers by ARN:
    {"issuer", "providers": {arn: {"url", "client_ids", "thumbprints"}}}."""

    def command(self, project: str) -> str:
        return self.request(project=project)

    def read(self, cloud: Cloud, project: str) -> dict[str, Any]:  # type: ignore[override]
        iam = cloud.client("iam")
        providers: dict[str, Any] = {}
        for listed in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=listed["Arn"])
            if tag_dict(provider.get("Tags")).get(PROJECT_TAG) != project:
                continue
            providers[listed["Arn"]] = {
                "url": provider["Url"],
                "client_ids": sorted(provider.get("ClientIDList", [])),
                "thumbprints": sorted(provider.get("ThumbprintList", [])),
            }
        return {"issuer": _issuer(cloud), "providers": providers}


# ---------------------------------------------------------------------------------------------- roles


def _trust(cloud: Cloud, spec: TrustSpec) -> str:
    document = trust_document(cloud.settings, spec, _issuer(cloud) if "service_account" in spec else None)
    if document is None:
        raise OperationError(
            f"the trust policy for {spec['service_account']} needs cluster {cloud.settings.cluster_name}'s "
            "OIDC issuer: run eks.cluster and iam.oidc_provider first"
        )
    return json.dumps(document)


def _create_role(state: State, host: Host, role_name: str, spec: TrustSpec) -> None:
    cloud = cloud_of(host)
    cloud.client("iam").create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=_trust(cloud, spec),
        Tags=tag_list(tags(cloud.settings.project, role_name)),
    )


def _update_trust(state: State, host: Host, role_name: str, spec: TrustSpec) -> None:
    cloud = cloud_of(host)
    cloud.client("iam").update_assume_role_policy(RoleName=role_name, PolicyDocument=_trust(cloud, spec))


def _attach(state: State, host: Host, role_name: str, policy_arn: str) -> None:
    cloud_of(host).client("iam").attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)


def _detach(state: State, host: Host, role_name: str, policy_arn: str) -> None:
    cloud_of(host).client("iam").detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)


def _put_inline(state: State, host: Host, role_name: str, policy_name: str, document: str) -> None:
    cloud_of(host).client("iam").put_role_policy(
        RoleName=role_name, PolicyName=policy_name, PolicyDocument=document
    )


def _delete_inline(state: State, host: Host, role_name: str, policy_name: str) -> None:
    cloud_of(host).client("iam").delete_role_policy(RoleName=role_name, PolicyName=policy_name)


def _delete_role(state: State, host: Host, role_name: str) -> None:
    iam = cloud_of(host).client("iam")
    for policy in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=policy["PolicyArn"])
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role_name, PolicyName=policy_name)
    iam.delete_role(RoleName=role_name)


def _role_changes(
    role_name: str,
    spec: TrustSpec,
    managed: Sequence[str] = (),
    inline: Mapping[str, dict[str, Any]] | None = None,
    present: bool = True,
) -> list[FunctionCommand]:
    """The commands that make role `role_name` trust `spec`, with exactly `managed` and `inline` policies."""
    settings = cloud_of(host).settings
    current = host.get_fact(Role, role_name=role_name)
    if not present:
        return [] if current is None else [FunctionCommand(_delete_role, (role_name,), {})]
    wanted_inline = {name: normalised(document) for name, document in (inline or {}).items()}
    commands: list[FunctionCommand] = []
    if current is None:
        current = {"trust": None, "managed": [], "inline": {}}
        commands.append(FunctionCommand(_create_role, (role_name, spec), {}))
    else:
        issuer = (
            host.get_fact(OidcProvider, project=settings.project)["issuer"]
            if "service_account" in spec
            else None
        )
        wanted_trust = trust_document(settings, spec, issuer)
        if wanted_trust is None or normalised(wanted_trust) != current["trust"]:
            commands.append(FunctionCommand(_update_trust, (role_name, spec), {}))
    for policy_arn in sorted(set(managed) - set(current["managed"])):
        commands.append(FunctionCommand(_attach, (role_name, policy_arn), {}))
    for policy_arn in sorted(set(current["managed"]) - set(managed)):
        commands.append(FunctionCommand(_detach, (role_name, policy_arn), {}))
    for policy_name, document in sorted(wanted_inline.items()):
        if current["inline"].get(policy_name) != document:
            commands.append(FunctionCommand(_put_inline, (role_name, policy_name, document), {}))
    for policy_name in sorted(set(current["inline"]) - set(wanted_inline)):
        commands.append(FunctionCommand(_delete_inline, (role_name, policy_name), {}))
    return commands


@operation()
def cluster_role(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The role the EKS control plane assumes, with AmazonEKSClusterPolicy."""
    role_name = cluster_role_name(cloud_of(host).settings)
    commands = _role_changes(role_name, {"service": "eks.amazonaws.com"}, CLUSTER_POLICIES, present=present)
    yield from changes(
        commands, f"role {role_name} is as declared" if present else f"role {role_name} is absent"
    )


@operation()
def node_role(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The role of the node group's instances: worker node, CNI and ECR read-only policies."""
    role_name = node_role_name(cloud_of(host).settings)
    commands = _role_changes(role_name, {"service": "ec2.amazonaws.com"}, NODE_POLICIES, present=present)
    yield from changes(
        commands, f"role {role_name} is as declared" if present else f"role {role_name} is absent"
    )


@operation()
def service_roles(grants: Grants, present: bool = True) -> Generator[FunctionCommand, None, None]:
    """Per service, role `<project>-<service>` that only the service account `<namespace>:<service>` can
    assume through the cluster's OIDC provider, allowed only its actions on its own table. `grants` maps
    a service to its table and DynamoDB actions (`dynamodb_grants(settings)` for the shop)."""
    settings = cloud_of(host).settings
    commands: list[FunctionCommand] = []
    for service, (table_name, actions) in sorted(grants.items()):
        commands += _role_changes(
            service_role_name(settings, service),
            {"service_account": f"{settings.namespace}:{service}"},
            inline={"dynamodb": table_policy(settings, table_name, actions)},
            present=present,
        )
    yield from changes(
        commands, f"{len(grants)} service roles are as declared" if present else "no service roles"
    )


@operation()
def load_balancer_controller_role(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The AWS Load Balancer Controller's role, for its service account in kube-system."""
    settings = cloud_of(host).settings
    role_name = load_balancer_controller_role_name(settings)
    commands = _role_changes(
        role_name,
        {"service_account": ":".join(LOAD_BALANCER_CONTROLLER)},
        inline={"load-balancer-controller": load_balancer_controller_policy()},
        present=present,
    )
    yield from changes(
        commands, f"role {role_name} is as declared" if present else f"role {role_name} is absent"
    )


@operation()
def cluster_autoscaler_role(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The cluster autoscaler's role, for its service account in kube-system (`cluster_autoscaler_policy`).
    Made whether or not the settings run the autoscaler: it can act only on the cluster's own groups."""
    settings = cloud_of(host).settings
    role_name = cluster_autoscaler_role_name(settings)
    commands = _role_changes(
        role_name,
        {"service_account": ":".join(CLUSTER_AUTOSCALER)},
        inline={"cluster-autoscaler": cluster_autoscaler_policy(settings)},
        present=present,
    )
    yield from changes(
        commands, f"role {role_name} is as declared" if present else f"role {role_name} is absent"
    )


# ---------------------------------------------------------------------------------------------- OIDC


def _create_provider(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    issuer = _issuer(cloud)
    if issuer is None:
        raise OperationError(
            f"no EKS cluster {cloud.settings.cluster_name}: run eks.cluster before iam.oidc_provider"
        )
    cloud.client("iam").create_open_id_connect_provider(
        Url=issuer,
        ClientIDList=[STS_AUDIENCE],
        ThumbprintList=[EKS_OIDC_THUMBPRINT],
        Tags=tag_list(tags(cloud.settings.project, f"{cloud.settings.cluster_name}-oidc")),
    )


def _add_audience(state: State, host: Host, provider_arn: str) -> None:
    cloud_of(host).client("iam").add_client_id_to_open_id_connect_provider(
        OpenIDConnectProviderArn=provider_arn, ClientID=STS_AUDIENCE
    )


def _set_thumbprint(state: State, host: Host, provider_arn: str) -> None:
    cloud_of(host).client("iam").update_open_id_connect_provider_thumbprint(
        OpenIDConnectProviderArn=provider_arn, ThumbprintList=[EKS_OIDC_THUMBPRINT]
    )


def _delete_provider(state: State, host: Host, provider_arn: str) -> None:
    cloud_of(host).client("iam").delete_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)


@operation()
def oidc_provider(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The IAM OIDC provider for the cluster's issuer (audience sts.amazonaws.com), so service accounts can
    assume their roles; a provider of the project for another issuer (an earlier cluster) is removed."""
    settings = cloud_of(host).settings
    current = host.get_fact(OidcProvider, project=settings.project)
    issuer, providers = current["issuer"], current["providers"]
    wanted = _provider_arn(settings, issuer) if present and issuer else None
    commands = [FunctionCommand(_delete_provider, (arn,), {}) for arn in sorted(providers) if arn != wanted]
    if present and wanted not in providers:
        commands.append(FunctionCommand(_create_provider, (), {}))
    elif present and wanted is not None:
        if STS_AUDIENCE not in providers[wanted]["client_ids"]:
            commands.append(FunctionCommand(_add_audience, (wanted,), {}))
        if EKS_OIDC_THUMBPRINT not in providers[wanted]["thumbprints"]:
            commands.append(FunctionCommand(_set_thumbprint, (wanted,), {}))
    yield from changes(commands, f"OIDC provider for {issuer}" if present else "no OIDC provider")


# ---------------------------------------------------------------------------------------------- GitHub

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
#: GitHub's published thumbprints of its issuer's certificates: IAM verifies this issuer against its own
#: trusted CAs and ignores them, but the API still keeps a list
GITHUB_THUMBPRINTS = ("1c58a3a8518e8759bf075b76b750d4f2df264fcd", "6938fd4d98bab03faadb97b34396831e3780aea1")
#: the tag saying the deploy made the provider: it is shared by the account's targets, so it carries no
#: project tag (which `oidc_provider` would take for an earlier cluster's provider and remove)
GITHUB_PROVIDER_TAG = "shopstack:github"
#: the service-linked roles AWS makes on the first EKS cluster and node group of an account
SERVICE_LINKED = ("eks.amazonaws.com", "eks-nodegroup.amazonaws.com", "autoscaling.amazonaws.com")
#: how long the deliver role's sessions last (IAM's default is an hour): a first deploy creates a cluster,
#: and the full suite runs after it, with the same credentials
DELIVER_SESSION_SECONDS = 4 * 3600
#: the EC2 resources the network creates, each tagged with the project as it is created
EC2_CREATED = (
    "vpc",
    "subnet",
    "internet-gateway",
    "elastic-ip",
    "natgateway",
    "route-table",
    "security-group",
)


def github_provider_arn(settings: Settings) -> str:
    return f"arn:aws:iam::{settings.account_id}:oidc-provider/{_issuer_host(GITHUB_ISSUER)}"


def deliver_role_name(settings: Settings) -> str:
    return f"{settings.project}-deliver"


def drift_role_name(settings: Settings) -> str:
    return f"{settings.project}-drift"


def github_subjects(settings: Settings) -> dict[str, str]:
    """Each delivery role and the one GitHub token subject it trusts."""
    repository = settings.github_repository
    return {
        deliver_role_name(settings): f"repo:{repository}:environment:{settings.github_environment}",
        drift_role_name(settings): f"repo:{repository}:ref:refs/heads/{settings.github_branch}",
    }


def github_trust_document(settings: Settings, subject: str) -> dict[str, Any]:
    """Only GitHub's tokens for `subject` (exactly: StringEquals), minted for STS."""
    issuer_host = _issuer_host(GITHUB_ISSUER)
    return _document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": github_provider_arn(settings)},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{issuer_host}:aud": STS_AUDIENCE, f"{issuer_host}:sub": subject}
                },
            }
        ]
    )


def _allow(sid: str, actions: Sequence[str], resources: Sequence[str], **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions)}
    statement["Resource"] = sorted(resources)
    if condition:
        statement["Condition"] = condition
    return statement


def _read_statements(settings: Settings) -> list[dict[str, Any]]:
    """What the deploy reads (every fact, so `--dry` plans): its own resources by name where the service
    allows; `*` where it does not (the Describe/List calls of EC2, ELB, ECR's repository list and login,
    IAM's provider and role lists: these have no resource-level permissions, and read metadata only)."""
    p, arn = settings.project, f"{settings.region}:{settings.account_id}"
    bucket = f"arn:aws:s3:::{settings.state_bucket}"
    project_tagged = {"StringEquals": {f"aws:ResourceTag/{PROJECT_TAG}": p}}
    return [
        _allow(
            "DescribeUnscopable",
            [
                "ec2:DescribeVpcs",
                "ec2:DescribeVpcAttribute",
                "ec2:DescribeSubnets",
                "ec2:DescribeInternetGateways",
                "ec2:DescribeNatGateways",
                "ec2:DescribeAddresses",
                "ec2:DescribeRouteTables",
                "ec2:DescribeSecurityGroups",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeTags",
                "ecr:DescribeRepositories",
                "ecr:GetAuthorizationToken",
                "iam:ListOpenIDConnectProviders",
                "iam:ListRoles",
            ],
            ["*"],
        ),
        _allow(
            "ReadStateBucket",
            [
                "s3:ListBucket",
                "s3:GetBucketVersioning",
                "s3:GetEncryptionConfiguration",
                "s3:GetBucketPublicAccessBlock",
                "s3:GetBucketPolicy",
                "s3:GetLifecycleConfiguration",
                "s3:GetBucketTagging",
            ],
            [bucket],
        ),
        _allow("ReadState", ["s3:GetObject"], [f"{bucket}/*"]),
        _allow(
            "ReadTables",
            [
                "dynamodb:DescribeTable",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:ListTagsOfResource",
                "dynamodb:GetItem",
            ],
            [f"arn:aws:dynamodb:{arn}:table/{p}-*"],
        ),
        _allow(
            "ReadCluster",
            ["eks:DescribeCluster", "eks:DescribeNodegroup"],
            [f"arn:aws:eks:{arn}:cluster/{p}", f"arn:aws:eks:{arn}:nodegroup/{p}/{p}-nodes/*"],
        ),
        _allow(
            "ReadRoles",
            ["iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies"],
            [f"arn:aws:iam::{settings.account_id}:role/{p}-*"],
        ),
        # a provider's ARN names its issuer, not the project
        _allow(
            "ReadProviders",
            ["iam:GetOpenIDConnectProvider"],
            [f"arn:aws:iam::{settings.account_id}:oidc-provider/*"],
        ),
        _allow(
            "ReadRepositories",
            ["ecr:BatchGetImage", "ecr:BatchCheckLayerAvailability", "ecr:GetLifecyclePolicy"],
            [f"arn:aws:ecr:{arn}:repository/{p}/*"],
        ),
        _allow("ReadSecretsKey", ["kms:DescribeKey"], ["*"], **project_tagged),
    ]


def _write_statements(settings: Settings) -> list[dict[str, Any]]:
    """What the deploy changes, on its own resources only: by name (bucket, tables, roles, cluster,
    repositories, key alias), or by the project tag every EC2 resource and the KMS key carry from their
    creation. Where AWS cannot scope further: EC2 and KMS creations by the tag they are created with,
    service-linked roles by service, the providers by issuer, and an inline role policy not by its content
    (the roles it manages, itself included, get exactly the policies this module declares)."""
    p, account, arn = settings.project, settings.account_id, f"{settings.region}:{settings.account_id}"
    bucket = f"arn:aws:s3:::{settings.state_bucket}"
    tagged = {"StringEquals": {f"aws:ResourceTag/{PROJECT_TAG}": p}}
    created_tagged = {"StringEquals": {f"aws:RequestTag/{PROJECT_TAG}": p}}
    ec2_creates = [
        "ec2:CreateVpc",
        "ec2:CreateSubnet",
        "ec2:CreateInternetGateway",
        "ec2:AllocateAddress",
        "ec2:CreateNatGateway",
        "ec2:CreateRouteTable",
        "ec2:CreateSecurityGroup",
    ]
    rules = ["ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress"]
    rules += ["ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"]
    return [
        _allow(
            "ChangeStateBucket",
            [
                "s3:CreateBucket",
                "s3:PutBucketVersioning",
                "s3:PutEncryptionConfiguration",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketPolicy",
                "s3:DeleteBucketPolicy",
                "s3:PutLifecycleConfiguration",
                "s3:PutBucketTagging",
            ],
            [bucket],
        ),
        _allow("WriteState", ["s3:PutObject"], [f"{bucket}/*"]),
        _allow(
            "ChangeTables",
            [
                "dynamodb:CreateTable",
                "dynamodb:UpdateTable",
                "dynamodb:DeleteTable",
                "dynamodb:UpdateContinuousBackups",
                "dynamodb:TagResource",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
            ],
            [f"arn:aws:dynamodb:{arn}:table/{p}-*"],
        ),
        _allow(
            "CreateNetwork",
            [*ec2_creates, "ec2:CreateTags"],
            [f"arn:aws:ec2:{arn}:{kind}/*" for kind in EC2_CREATED],
            **created_tagged,
        ),
        _allow(
            "ChangeNetwork",
            [
                *ec2_creates,
                *rules,
                "ec2:CreateTags",
                "ec2:DeleteTags",
                "ec2:ModifyVpcAttribute",
                "ec2:DeleteVpc",
                "ec2:ModifySubnetAttribute",
                "ec2:DeleteSubnet",
                "ec2:AttachInternetGateway",
                "ec2:DetachInternetGateway",
                "ec2:DeleteInternetGateway",
                "ec2:ReleaseAddress",
                "ec2:DeleteNatGateway",
                "ec2:CreateRoute",
                "ec2:ReplaceRoute",
                "ec2:DeleteRoute",
                "ec2:AssociateRouteTable",
                "ec2:DisassociateRouteTable",
                "ec2:ReplaceRouteTableAssociation",
                "ec2:DeleteRouteTable",
                "ec2:DeleteSecurityGroup",
            ],
            ["*"],
            **tagged,
        ),
        # a rule is made inside a group the statement above scopes; the rule itself has no tag to check
        _allow("ChangeRules", rules, [f"arn:aws:ec2:{arn}:security-group-rule/*"]),
        _allow(
            "ChangeCluster",
            [
                "eks:CreateCluster",
                "eks:UpdateClusterConfig",
                "eks:UpdateClusterVersion",
                "eks:DeleteCluster",
                "eks:CreateNodegroup",
                "eks:UpdateNodegroupConfig",
                "eks:UpdateNodegroupVersion",
                "eks:DeleteNodegroup",
                "eks:TagResource",
            ],
            [f"arn:aws:eks:{arn}:cluster/{p}", f"arn:aws:eks:{arn}:nodegroup/{p}/{p}-nodes/*"],
        ),
        _allow(
            "PassClusterRoles",
            ["iam:PassRole"],
            [role_arn(settings, cluster_role_name(settings)), role_arn(settings, node_role_name(settings))],
        ),
        _allow(
            "ChangeRoles",
            [
                "iam:CreateRole",
                "iam:UpdateRole",
                "iam:TagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:DeleteRole",
            ],
            [f"arn:aws:iam::{account}:role/{p}-*"],
        ),
        _allow(
            "AttachOnlyTheClusterPolicies",
            ["iam:AttachRolePolicy"],
            [f"arn:aws:iam::{account}:role/{p}-*"],
            ArnEquals={"iam:PolicyARN": sorted({*CLUSTER_POLICIES, *NODE_POLICIES})},
        ),
        _allow(
            "ChangeProviders",
            [
                "iam:CreateOpenIDConnectProvider",
                "iam:TagOpenIDConnectProvider",
                "iam:AddClientIDToOpenIDConnectProvider",
                "iam:UpdateOpenIDConnectProviderThumbprint",
                "iam:DeleteOpenIDConnectProvider",
            ],
            [
                f"arn:aws:iam::{account}:oidc-provider/oidc.eks.{settings.region}.amazonaws.com/id/*",
                github_provider_arn(settings),
            ],
        ),
        _allow(
            "ServiceLinkedRoles",
            ["iam:CreateServiceLinkedRole"],
            ["*"],
            StringEquals={"iam:AWSServiceName": list(SERVICE_LINKED)},
        ),
        _allow(
            "ChangeRepositories",
            [
                "ecr:CreateRepository",
                "ecr:TagResource",
                "ecr:PutImageScanningConfiguration",
                "ecr:PutImageTagMutability",
                "ecr:PutLifecyclePolicy",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
                "ecr:DeleteRepository",
            ],
            [f"arn:aws:ecr:{arn}:repository/{p}/*"],
        ),
        _allow("CreateSecretsKey", ["kms:CreateKey", "kms:TagResource"], ["*"], **created_tagged),
        _allow(
            "UseSecretsKey",
            [
                "kms:EnableKeyRotation",
                "kms:CreateGrant",
                "kms:CreateAlias",
                "kms:DeleteAlias",
                "kms:ScheduleKeyDeletion",
            ],
            ["*"],
            **tagged,
        ),
        _allow(
            "NameSecretsKey",
            ["kms:CreateAlias", "kms:DeleteAlias"],
            [f"arn:aws:kms:{arn}:alias/{p}-*"],
        ),
    ]


def delivery_policy(settings: Settings) -> dict[str, Any]:
    """`<project>-deliver`'s policy: what `deploy.py` and `teardown.py` read and change, and no more."""
    return _document([*_read_statements(settings), *_write_statements(settings)])


def drift_policy(settings: Settings) -> dict[str, Any]:
    """`<project>-drift`'s policy: what `pyinfra ... deploy.py --dry` reads, and no more."""
    return _document(_read_statements(settings))


class GithubProvider(ApiFact[dict[str, Any] | None]):
    """GitHub's OIDC provider in the account: its audiences, whether the deploy made it, and the roles
    whose trust policy names it; None when there is none."""

    def command(self) -> str:
        return self.request()

    def read(self, cloud: Cloud) -> dict[str, Any] | None:  # type: ignore[override]
        iam = cloud.client("iam")
        provider_arn = github_provider_arn(cloud.settings)
        try:
            provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
        except ClientError as err:
            if err.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise
        return {
            "client_ids": sorted(provider.get("ClientIDList", [])),
            "made_by_deploy": GITHUB_PROVIDER_TAG in tag_dict(provider.get("Tags")),
            "trusted_by": _trusting(iam, provider_arn),
        }


def _trusting(iam: Any, provider_arn: str) -> list[str]:
    """The roles of the account whose trust policy names `provider_arn`."""
    return sorted(
        role["RoleName"]
        for page in iam.get_paginator("list_roles").paginate()
        for role in page["Roles"]
        if provider_arn in json.dumps(role.get("AssumeRolePolicyDocument") or {})
    )


def _create_github_provider(state: State, host: Host) -> None:
    settings = cloud_of(host).settings
    cloud_of(host).client("iam").create_open_id_connect_provider(
        Url=GITHUB_ISSUER,
        ClientIDList=[STS_AUDIENCE],
        ThumbprintList=list(GITHUB_THUMBPRINTS),
        Tags=tag_list({"Name": "github-actions", GITHUB_PROVIDER_TAG: "delivery"}),
    )
    host.log_styled(f"made {github_provider_arn(settings)}, for every target in the account to share")


def _delete_unused_github_provider(state: State, host: Host) -> None:
    """Remove GitHub's provider unless a role trusts it now (another target's, made since the plan)."""
    iam = cloud_of(host).client("iam")
    provider_arn = github_provider_arn(cloud_of(host).settings)
    users = _trusting(iam, provider_arn)
    if users:
        host.log_styled(f"kept {provider_arn}: roles {', '.join(users)} trust it")
        return
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)


@operation()
def github_oidc_provider(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """GitHub Actions' OIDC provider (audience sts.amazonaws.com) when the settings name a repository.
    One per account, shared by the account's targets: without a repository (or with `present=False`) the
    one the deploy made is removed once no role trusts it, other than this target's delivery roles, which
    `delivery_roles(present=False)` removes first."""
    settings = cloud_of(host).settings
    wanted = present and settings.github_repository is not None
    current = host.get_fact(GithubProvider)
    commands: list[FunctionCommand] = []
    if wanted and current is None:
        commands.append(FunctionCommand(_create_github_provider, (), {}))
    elif wanted and current is not None and STS_AUDIENCE not in current["client_ids"]:
        commands.append(FunctionCommand(_add_audience, (github_provider_arn(settings),), {}))
    elif not wanted and current is not None and current["made_by_deploy"]:
        ours = {deliver_role_name(settings), drift_role_name(settings)}
        if not set(current["trusted_by"]) - ours:
            commands.append(FunctionCommand(_delete_unused_github_provider, (), {}))
    if wanted:
        already = f"GitHub's OIDC provider {github_provider_arn(settings)}"
    elif current is not None and current["made_by_deploy"]:
        already = f"GitHub's OIDC provider is kept: roles {', '.join(current['trusted_by'])} trust it"
    else:
        already = "no GitHub OIDC provider of the deploy"
    yield from changes(commands, already)


def _set_max_session(state: State, host: Host, role_name: str, seconds: int) -> None:
    cloud_of(host).client("iam").update_role(RoleName=role_name, MaxSessionDuration=seconds)


@operation()
def delivery_roles(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The pipeline's roles when the settings name a GitHub repository (module docstring): each trusts
    exactly one GitHub token subject, and has exactly `delivery_policy` or `drift_policy`; the deliver
    role's sessions may last DELIVER_SESSION_SECONDS. Without a repository, or with `present=False`, both
    are removed."""
    settings = cloud_of(host).settings
    wanted = present and settings.github_repository is not None
    policies = {
        deliver_role_name(settings): ("deliver", delivery_policy(settings)),
        drift_role_name(settings): ("drift", drift_policy(settings)),
    }
    commands: list[FunctionCommand] = []
    for role_name, subject in github_subjects(settings).items():
        policy_name, policy = policies[role_name]
        spec = {"github": subject}
        commands += _role_changes(role_name, spec, inline={policy_name: policy}, present=wanted)
    deliver = deliver_role_name(settings)
    current = host.get_fact(Role, role_name=deliver)
    if wanted and (current or {}).get("max_session_seconds") != DELIVER_SESSION_SECONDS:
        commands.append(FunctionCommand(_set_max_session, (deliver, DELIVER_SESSION_SECONDS), {}))
    names = " and ".join(policies)
    yield from changes(commands, f"roles {names} are as declared" if wanted else f"no roles {names}")
