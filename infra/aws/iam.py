"""IAM for the cluster: the EKS cluster and node roles with their AWS-managed policies, the cluster's OIDC
provider, and the per-service roles (IRSA) that let a pod's service account, and only it, act on its own
DynamoDB table; plus the AWS Load Balancer Controller's role (`policies/aws-load-balancer-controller.json`,
its source in `policies/README.md`).

Policies compare as documents (`normalised`: keys sorted, single actions and resources as lists), so a
second run changes nothing and a hand edit is repaired. A trust policy that names the OIDC provider needs
the cluster's issuer: at plan time without a cluster the plan says the role will be created, and the
command reads the issuer when it runs (after `infra.aws.eks.cluster`).
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

#: what each service calls on its table: `services/cart/store.py` (describe_table for readiness, get,
#: put, update and delete of a user's cart) and `services/accounting/ledger.py` (conditional put, get,
#: and `Table.load()`, a DescribeTable, for readiness)
SERVICE_TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "cart": ("DescribeTable", "GetItem", "PutItem", "UpdateItem", "DeleteItem"),
    "accounting": ("DescribeTable", "GetItem", "PutItem"),
}

#: who may assume a role: {"service": "eks.amazonaws.com"} or {"service_account": "namespace:name"}
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


def dynamodb_grants(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """The `grants` of `service_roles` for the shop: each service, its table and the actions it calls."""
    tables = {"cart": settings.carts_table, "accounting": settings.orders_table}
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
    document = trust_document(cloud.settings, spec, _issuer(cloud))
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
