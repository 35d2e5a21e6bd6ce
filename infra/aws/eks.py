"""The EKS cluster and its managed node group.

`cluster()`: `settings.cluster_name` at `settings.kubernetes_version`, in the private subnets with the
cluster security group (`infra.aws.network`), the cluster role (`infra.aws.iam`), private and public
endpoint access, api/audit control plane logs, and secrets encrypted with the project's KMS key
(`alias/<project>-eks-secrets`, made on first create). Drift in logging or endpoint access is updated in
place; an older version is upgraded with `update_cluster_version` (the emulator does not implement it).
The cluster's pod network enforces NetworkPolicies: its VPC CNI is the EKS add-on `vpc-cni` with the
network policy agent on (`configurationValues` `{"enableNetworkPolicy": "true"}`), made with the cluster
(before any node, so nodes start with it; `OVERWRITE` adopts the self-managed CNI a new cluster has), and
turned on in place (`PRESERVE`, keeping any other value set) where it is off; every change is awaited and
then checked on the add-on itself.

`node_group()`: `<project>-nodes` in the private subnets (the local cloud's EKS binding puts its nodes in
those subnets' zones and sizes them by `instanceTypes` and `scalingConfig.desiredSize`), at the cluster's
version (given explicitly: the emulator defaults to 1.19), with the node role and labels, and the cluster
autoscaler's auto-discovery tags (`k8s.io/cluster-autoscaler/enabled`, `k8s.io/cluster-autoscaler/<cluster>`
= `owned`: EKS puts them on the group's Auto Scaling group too), added to a group that lacks them. Sizes
and labels are updated in place with `update_nodegroup_config`; where the cluster autoscaler runs, the
desired size is the settings' at creation only and the autoscaler's afterwards (a deploy changes min and
max, and the desired size only to bring it inside them). An instance type cannot change in place, and
replacing the node group would drain every pod at once, so a changed instance type fails the operation
with one line saying how to replace it on purpose (`node_group(present=False)`, then deploy again).

Every wait is bounded and logs a progress line. `present=False` deletes (node group before cluster, as
teardown runs operations in reverse) and waits until the resource is gone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator
from typing import Any

import yaml
from botocore.exceptions import ClientError
from pyinfra.api.command import FunctionCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.aws.iam import cluster_role_name, node_role_name, role_arn
from infra.aws.network import network_ids
from infra.aws.tags import tags
from infra.cloud import Cloud, cloud_of
from infra.fact import ApiFact
from infra.model.cluster_autoscaler import discovery_tags
from infra.settings import Settings

log = logging.getLogger("pyinfra")

ACTIVE = "ACTIVE"
LOG_TYPES = ("api", "audit")
CLUSTER_WAIT_SECONDS = 1800
ADDON_WAIT_SECONDS = 900
#: the add-on whose network policy agent enforces NetworkPolicies, and the values that turn it on
VPC_CNI = "vpc-cni"
NETWORK_POLICY = {"enableNetworkPolicy": "true"}
NODE_GROUP_WAIT_SECONDS = 1500
POLL_SECONDS = 15


def node_group_name(settings: Settings) -> str:
    return f"{settings.project}-nodes"


def secrets_key_alias(settings: Settings) -> str:
    return f"alias/{settings.project}-eks-secrets"


def node_labels(settings: Settings) -> dict[str, str]:
    return {"shopstack/project": settings.project, "shopstack/node-group": node_group_name(settings)}


def _missing(err: ClientError) -> bool:
    return err.response["Error"]["Code"] == "ResourceNotFoundException"


# ---------------------------------------------------------------------------------------------- facts


def _describe_cluster(cloud: Cloud, cluster_name: str) -> dict[str, Any] | None:
    try:
        return cloud.client("eks").describe_cluster(name=cluster_name)["cluster"]  # type: ignore[no-any-return]
    except ClientError as err:
        if _missing(err):
            return None
        raise


def _describe_node_group(cloud: Cloud, cluster_name: str, nodegroup_name: str) -> dict[str, Any] | None:
    try:
        answer = cloud.client("eks").describe_nodegroup(
            clusterName=cluster_name, nodegroupName=nodegroup_name
        )
    except ClientError as err:
        if _missing(err):
            return None
        raise
    return answer["nodegroup"]  # type: ignore[no-any-return]


class Cluster(ApiFact[dict[str, Any] | None]):
    """The cluster's status, version, role, subnets, security groups, endpoint access, enabled log types,
    encrypted resources and OIDC issuer; None when there is no such cluster."""

    def command(self, cluster_name: str) -> str:
        return self.request(cluster_name=cluster_name)

    def read(self, cloud: Cloud, cluster_name: str) -> dict[str, Any] | None:  # type: ignore[override]
        cluster = _describe_cluster(cloud, cluster_name)
        if cluster is None:
            return None
        vpc = cluster.get("resourcesVpcConfig") or {}
        logging_ = (cluster.get("logging") or {}).get("clusterLogging") or []
        return {
            "status": cluster["status"],
            "version": cluster["version"],
            "role": cluster["roleArn"],
            "subnets": sorted(vpc.get("subnetIds") or []),
            "security_groups": sorted(vpc.get("securityGroupIds") or []),
            "private_access": bool(vpc.get("endpointPrivateAccess")),
            "public_access": bool(vpc.get("endpointPublicAccess")),
            "logs": sorted(t for entry in logging_ if entry.get("enabled") for t in entry.get("types", [])),
            "encrypted": sorted(
                r for c in cluster.get("encryptionConfig") or [] for r in c.get("resources", [])
            ),
            "issuer": ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer"),
        }


def _describe_addon(cloud: Cloud, cluster_name: str, addon_name: str) -> dict[str, Any] | None:
    try:
        answer = cloud.client("eks").describe_addon(clusterName=cluster_name, addonName=addon_name)
    except ClientError as err:
        if _missing(err):  # no such add-on, or no such cluster
            return None
        raise
    return answer["addon"]  # type: ignore[no-any-return]


def addon_configuration(addon: dict[str, Any]) -> dict[str, Any]:
    """An add-on's `configurationValues` (JSON or YAML) as a mapping; {} when it has none."""
    text = addon.get("configurationValues") or ""
    parsed = yaml.safe_load(text) if text.strip() else {}
    return parsed if isinstance(parsed, dict) else {}


def enforces_network_policies(configuration: dict[str, Any]) -> bool:
    return all(str(configuration.get(key)).lower() == value for key, value in NETWORK_POLICY.items())


class Addon(ApiFact[dict[str, Any] | None]):
    """An EKS add-on's status, version and configuration values (parsed); None when the cluster has no
    such add-on (or there is no cluster)."""

    def command(self, cluster_name: str, addon_name: str) -> str:
        return self.request(cluster_name=cluster_name, addon_name=addon_name)

    def read(self, cloud: Cloud, cluster_name: str, addon_name: str) -> dict[str, Any] | None:  # type: ignore[override]
        addon = _describe_addon(cloud, cluster_name, addon_name)
        if addon is None:
            return None
        return {
            "status": addon["status"],
            "version": addon.get("addonVersion"),
            "configuration": addon_configuration(addon),
        }


class NodeGroup(ApiFact[dict[str, Any] | None]):
    """The node group's status, version, instance types, sizes, subnets, role and labels; None when absent."""

    def command(self, cluster_name: str, nodegroup_name: str) -> str:
        return self.request(cluster_name=cluster_name, nodegroup_name=nodegroup_name)

    def read(self, cloud: Cloud, cluster_name: str, nodegroup_name: str) -> dict[str, Any] | None:  # type: ignore[override]
        group = _describe_node_group(cloud, cluster_name, nodegroup_name)
        if group is None:
            return None
        scaling = group.get("scalingConfig") or {}
        return {
            "status": group["status"],
            "version": group.get("version"),
            "instance_types": list(group.get("instanceTypes") or []),
            "scaling": {k: scaling.get(k) for k in ("minSize", "desiredSize", "maxSize")},
            "subnets": sorted(group.get("subnets") or []),
            "role": group.get("nodeRole"),
            "labels": dict(group.get("labels") or {}),
            "tags": dict(group.get("tags") or {}),
            "arn": group.get("nodegroupArn"),
        }


# ---------------------------------------------------------------------------------------------- waiting


def _wait(host: Host, what: str, status: Callable[[], str | None], until: str | None, timeout: float) -> None:
    """Poll `status()` until it is `until` (None: gone), at most `timeout` seconds, logging progress."""
    started = time.monotonic()
    while True:
        now = status()
        if now == until:
            return
        waited = time.monotonic() - started
        if now in ("FAILED", "CREATE_FAILED", "DELETE_FAILED", "DEGRADED"):
            raise OperationError(f"{what} is {now}")
        if waited >= timeout:
            raise OperationError(f"{what} is still {now} after {timeout:.0f}s, expected {until or 'gone'}")
        log.info(f"{host.print_prefix}waiting for {what}: {now} ({waited:.0f}s of at most {timeout:.0f}s)")
        time.sleep(POLL_SECONDS)


def _cluster_status(cloud: Cloud) -> Callable[[], str | None]:
    def status() -> str | None:
        cluster = _describe_cluster(cloud, cloud.settings.cluster_name)
        return None if cluster is None else str(cluster["status"])

    return status


def _addon_status(cloud: Cloud, addon_name: str) -> Callable[[], str | None]:
    def status() -> str | None:
        addon = _describe_addon(cloud, cloud.settings.cluster_name, addon_name)
        return None if addon is None else str(addon["status"])

    return status


def _node_group_status(cloud: Cloud) -> Callable[[], str | None]:
    def status() -> str | None:
        group = _describe_node_group(cloud, cloud.settings.cluster_name, node_group_name(cloud.settings))
        return None if group is None else str(group["status"])

    return status


# ---------------------------------------------------------------------------------------------- cluster


def _secrets_key_arn(cloud: Cloud) -> str:
    """The project's KMS key for secrets encryption; made (and aliased) if there is none."""
    kms = cloud.client("kms")
    alias = secrets_key_alias(cloud.settings)
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except ClientError as err:
        if err.response["Error"]["Code"] != "NotFoundException":
            raise
    key = kms.create_key(
        Description=f"{cloud.settings.cluster_name} EKS secrets encryption",
        Tags=[{"TagKey": k, "TagValue": v} for k, v in tags(cloud.settings.project, alias).items()],
    )["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return str(key["Arn"])


def _network(cloud: Cloud) -> tuple[list[str], str]:
    """The private subnet ids (zone order) and the cluster security group id, looked up now."""
    ids = network_ids(cloud, cloud.settings.project, cloud.settings.zones)
    group = ids["security_groups"].get("cluster")
    if len(ids["private_subnets"]) != len(cloud.settings.zones) or group is None:
        raise OperationError(
            "the network is incomplete (private subnets, cluster security group): run network first"
        )
    return ids["private_subnets"], group


def _create_cluster(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    subnet_ids, group = _network(cloud)
    cloud.client("eks").create_cluster(
        name=s.cluster_name,
        version=s.kubernetes_version,
        roleArn=role_arn(s, cluster_role_name(s)),
        resourcesVpcConfig={
            "subnetIds": subnet_ids,
            "securityGroupIds": [group],
            "endpointPrivateAccess": True,
            "endpointPublicAccess": True,
        },
        logging={"clusterLogging": [{"types": list(LOG_TYPES), "enabled": True}]},
        encryptionConfig=[{"resources": ["secrets"], "provider": {"keyArn": _secrets_key_arn(cloud)}}],
        tags=tags(s.project, s.cluster_name),
    )
    _wait(host, f"cluster {s.cluster_name}", _cluster_status(cloud), ACTIVE, CLUSTER_WAIT_SECONDS)


def _update_cluster(state: State, host: Host, change: dict[str, Any]) -> None:
    cloud = cloud_of(host)
    cloud.client("eks").update_cluster_config(name=cloud.settings.cluster_name, **change)
    _wait(
        host, f"cluster {cloud.settings.cluster_name}", _cluster_status(cloud), ACTIVE, CLUSTER_WAIT_SECONDS
    )


def _upgrade_cluster(state: State, host: Host, version: str) -> None:
    cloud = cloud_of(host)
    cloud.client("eks").update_cluster_version(name=cloud.settings.cluster_name, version=version)
    _wait(
        host, f"cluster {cloud.settings.cluster_name}", _cluster_status(cloud), ACTIVE, CLUSTER_WAIT_SECONDS
    )


def _delete_cluster(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    cloud.client("eks").delete_cluster(name=s.cluster_name)
    _wait(host, f"cluster {s.cluster_name} deletion", _cluster_status(cloud), None, CLUSTER_WAIT_SECONDS)
    kms = cloud.client("kms")
    try:
        key_id = kms.describe_key(KeyId=secrets_key_alias(s))["KeyMetadata"]["KeyId"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "NotFoundException":
            return
        raise
    kms.delete_alias(AliasName=secrets_key_alias(s))
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)


def _check_network_policy(cloud: Cloud) -> None:
    """The VPC CNI add-on, once ACTIVE, has its network policy agent on; else the operation fails."""
    addon = _describe_addon(cloud, cloud.settings.cluster_name, VPC_CNI)
    if addon is None or not enforces_network_policies(addon_configuration(addon)):
        found = "no such add-on" if addon is None else repr(addon.get("configurationValues"))
        raise OperationError(
            f"the {VPC_CNI} add-on of cluster {cloud.settings.cluster_name} does not enforce NetworkPolicies "
            f"after the change ({found})"
        )


def _create_vpc_cni(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    cloud.client("eks").create_addon(
        clusterName=s.cluster_name,
        addonName=VPC_CNI,
        configurationValues=json.dumps(NETWORK_POLICY, sort_keys=True),
        resolveConflicts="OVERWRITE",
        tags=tags(s.project, f"{s.cluster_name}-{VPC_CNI}"),
    )
    _wait(host, f"add-on {VPC_CNI}", _addon_status(cloud, VPC_CNI), ACTIVE, ADDON_WAIT_SECONDS)
    _check_network_policy(cloud)


def _update_vpc_cni(state: State, host: Host, configuration: dict[str, Any]) -> None:
    cloud = cloud_of(host)
    cloud.client("eks").update_addon(
        clusterName=cloud.settings.cluster_name,
        addonName=VPC_CNI,
        configurationValues=json.dumps(configuration, sort_keys=True),
        resolveConflicts="PRESERVE",
    )
    _wait(host, f"add-on {VPC_CNI}", _addon_status(cloud, VPC_CNI), ACTIVE, ADDON_WAIT_SECONDS)
    _check_network_policy(cloud)


def _await_vpc_cni(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    _wait(host, f"add-on {VPC_CNI}", _addon_status(cloud, VPC_CNI), ACTIVE, ADDON_WAIT_SECONDS)
    _check_network_policy(cloud)


def _vpc_cni_changes(addon: dict[str, Any] | None) -> list[FunctionCommand]:
    """What makes the cluster's VPC CNI add-on enforce NetworkPolicies: nothing when it does."""
    if addon is None:
        return [FunctionCommand(_create_vpc_cni, (), {})]
    if addon["status"] in ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "DEGRADED", "DELETING"):
        raise OperationError(f"the {VPC_CNI} add-on is {addon['status']}: see its health issues in EKS")
    if not enforces_network_policies(addon["configuration"]):
        return [FunctionCommand(_update_vpc_cni, ({**addon["configuration"], **NETWORK_POLICY},), {})]
    if addon["status"] != ACTIVE:  # CREATING or UPDATING, with the agent on: wait for it
        return [FunctionCommand(_await_vpc_cni, (), {})]
    return []


@operation()
def cluster(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The EKS cluster, ACTIVE, as declared (see the module docstring)."""
    s = cloud_of(host).settings
    current = host.get_fact(Cluster, cluster_name=s.cluster_name)
    if not present:
        if current is None:
            host.noop(f"cluster {s.cluster_name} is absent")
            return
        yield FunctionCommand(_delete_cluster, (), {})
        return
    if current is None:
        yield FunctionCommand(_create_cluster, (), {})
        yield FunctionCommand(_create_vpc_cni, (), {})
        return
    if current["status"] != ACTIVE:
        raise OperationError(
            f"cluster {s.cluster_name} is {current['status']}, not ACTIVE: wait or tear it down"
        )
    changes: list[FunctionCommand] = []
    if sorted(current["logs"]) != sorted(LOG_TYPES):
        logs = {"logging": {"clusterLogging": [{"types": list(LOG_TYPES), "enabled": True}]}}
        changes.append(FunctionCommand(_update_cluster, (logs,), {}))
    if not (current["private_access"] and current["public_access"]):
        access = {"resourcesVpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": True}}
        changes.append(FunctionCommand(_update_cluster, (access,), {}))
    if current["version"] != s.kubernetes_version:
        if _version(current["version"]) > _version(s.kubernetes_version):
            raise OperationError(
                f"cluster {s.cluster_name} runs {current['version']}, settings say {s.kubernetes_version}: "
                "EKS cannot downgrade a cluster"
            )
        changes.append(FunctionCommand(_upgrade_cluster, (s.kubernetes_version,), {}))
    changes += _vpc_cni_changes(host.get_fact(Addon, cluster_name=s.cluster_name, addon_name=VPC_CNI))
    if not changes:
        host.noop(
            f"cluster {s.cluster_name} is ACTIVE at {current['version']}, "
            f"its {VPC_CNI} enforcing NetworkPolicies"
        )
    yield from changes


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# ---------------------------------------------------------------------------------------------- node group


def _scaling(settings: Settings) -> dict[str, int]:
    group = settings.node_group
    return {"minSize": group.min_size, "desiredSize": group.desired_size, "maxSize": group.max_size}


def scaling_change(settings: Settings, current: dict[str, int]) -> dict[str, int] | None:
    """The `scalingConfig` that makes the group's sizes the settings' (None: they are). Where the cluster
    autoscaler runs, the desired size is its own: only min and max are compared, and the desired size is
    sent only to bring it inside them (EKS refuses a desired size outside min..max)."""
    wanted = _scaling(settings)
    if not settings.cluster_autoscaler_enabled:
        return None if current == wanted else wanted
    if (current.get("minSize"), current.get("maxSize")) == (wanted["minSize"], wanted["maxSize"]):
        return None
    change = {"minSize": wanted["minSize"], "maxSize": wanted["maxSize"]}
    desired = current.get("desiredSize")
    inside = wanted["desiredSize"] if desired is None else desired
    inside = min(max(inside, change["minSize"]), change["maxSize"])
    if inside != desired:
        change["desiredSize"] = inside
    return change


def node_group_tags(settings: Settings) -> dict[str, str]:
    """The node group's tags: the project's, and the cluster autoscaler's auto-discovery tags."""
    return {**tags(settings.project, node_group_name(settings)), **discovery_tags(settings.cluster_name)}


def _create_node_group(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    subnet_ids, _ = _network(cloud)
    cloud.client("eks").create_nodegroup(
        clusterName=s.cluster_name,
        nodegroupName=node_group_name(s),
        version=s.kubernetes_version,
        subnets=subnet_ids,
        nodeRole=role_arn(s, node_role_name(s)),
        instanceTypes=[s.node_group.instance_type],
        capacityType="ON_DEMAND",
        scalingConfig=_scaling(s),
        labels=node_labels(s),
        tags=node_group_tags(s),
    )
    _wait(
        host, f"node group {node_group_name(s)}", _node_group_status(cloud), ACTIVE, NODE_GROUP_WAIT_SECONDS
    )


def _update_node_group(state: State, host: Host, change: dict[str, Any]) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    cloud.client("eks").update_nodegroup_config(
        clusterName=s.cluster_name, nodegroupName=node_group_name(s), **change
    )
    _wait(
        host, f"node group {node_group_name(s)}", _node_group_status(cloud), ACTIVE, NODE_GROUP_WAIT_SECONDS
    )


def _upgrade_node_group(state: State, host: Host, version: str) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    cloud.client("eks").update_nodegroup_version(
        clusterName=s.cluster_name, nodegroupName=node_group_name(s), version=version
    )
    _wait(
        host, f"node group {node_group_name(s)}", _node_group_status(cloud), ACTIVE, NODE_GROUP_WAIT_SECONDS
    )


def _tag_node_group(state: State, host: Host, arn: str, missing: dict[str, str]) -> None:
    cloud_of(host).client("eks").tag_resource(resourceArn=arn, tags=missing)


def _delete_node_group(state: State, host: Host) -> None:
    cloud = cloud_of(host)
    s = cloud.settings
    cloud.client("eks").delete_nodegroup(clusterName=s.cluster_name, nodegroupName=node_group_name(s))
    what = f"node group {node_group_name(s)} deletion"
    _wait(host, what, _node_group_status(cloud), None, NODE_GROUP_WAIT_SECONDS)


@operation()
def node_group(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The managed node group, ACTIVE, with the settings' instance type and sizes (module docstring)."""
    s = cloud_of(host).settings
    group = node_group_name(s)
    current = host.get_fact(NodeGroup, cluster_name=s.cluster_name, nodegroup_name=group)
    if not present:
        if current is None:
            host.noop(f"node group {group} is absent")
            return
        yield FunctionCommand(_delete_node_group, (), {})
        return
    if current is None:
        yield FunctionCommand(_create_node_group, (), {})
        return
    if current["status"] != ACTIVE:
        raise OperationError(f"node group {group} is {current['status']}, not ACTIVE: wait or tear it down")
    if current["instance_types"] != [s.node_group.instance_type]:
        raise OperationError(
            f"node group {group} runs {','.join(current['instance_types'])}, settings say "
            f"{s.node_group.instance_type}: EKS cannot change a node group's instance type in place; "
            "to replace it (every pod restarts), run node_group(present=False) and deploy again"
        )
    changes: list[FunctionCommand] = []
    resize = scaling_change(s, current["scaling"])
    if resize is not None:
        changes.append(FunctionCommand(_update_node_group, ({"scalingConfig": resize},), {}))
    wanted_labels = node_labels(s)
    if current["labels"] != wanted_labels:
        labels = {
            "addOrUpdateLabels": wanted_labels,
            **(
                {"removeLabels": stale}
                if (stale := sorted(set(current["labels"]) - set(wanted_labels)))
                else {}
            ),
        }
        changes.append(FunctionCommand(_update_node_group, ({"labels": labels},), {}))
    if current["version"] != s.kubernetes_version:
        changes.append(FunctionCommand(_upgrade_node_group, (s.kubernetes_version,), {}))
    missing = {k: v for k, v in node_group_tags(s).items() if current["tags"].get(k) != v}
    if missing:
        changes.append(FunctionCommand(_tag_node_group, (current["arn"], missing), {}))
    if not changes:
        scaling = current["scaling"]
        host.noop(
            f"node group {group}: {s.node_group.instance_type}, "
            f"{scaling['minSize']} <= {scaling['desiredSize']} <= {scaling['maxSize']}"
        )
    yield from changes
