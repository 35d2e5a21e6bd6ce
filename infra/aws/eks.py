"""The EKS cluster and its managed node group.

`cluster()`: `settings.cluster_name` at `settings.kubernetes_version`, in the private subnets with the
cluster security group (`infra.aws.network`), the cluster role (`infra.aws.iam`), private and public
endpoint access, api/audit control plane logs, and secrets encrypted with the project's KMS key
(`alias/<project>-eks-secrets`, made on first create). Drift in logging or endpoint access is updated in
place; an older version is upgraded with `update_cluster_version` (the emulator does not implement it).

`node_group()`: `<project>-nodes` in the private subnets (the local cloud's EKS binding puts its nodes in
those subnets' zones and sizes them by `instanceTypes` and `scalingConfig.desiredSize`), at the cluster's
version (given explicitly: the emulator defaults to 1.19), with the node role and labels. Sizes and labels
are updated in place with `update_nodegroup_config`. An instance type cannot change in place, and
replacing the node group would drain every pod at once, so a changed instance type fails the operation
with one line saying how to replace it on purpose (`node_group(present=False)`, then deploy again).

Every wait is bounded and logs a progress line. `present=False` deletes (node group before cluster, as
teardown runs operations in reverse) and waits until the resource is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any

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
from infra.settings import Settings

log = logging.getLogger("pyinfra")

ACTIVE = "ACTIVE"
LOG_TYPES = ("api", "audit")
CLUSTER_WAIT_SECONDS = 1800
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
    if not changes:
        host.noop(f"cluster {s.cluster_name} is ACTIVE at {current['version']}")
    yield from changes


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# ---------------------------------------------------------------------------------------------- node group


def _scaling(settings: Settings) -> dict[str, int]:
    group = settings.node_group
    return {"minSize": group.min_size, "desiredSize": group.desired_size, "maxSize": group.max_size}


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
        tags=tags(s.project, node_group_name(s)),
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
    if current["scaling"] != _scaling(s):
        changes.append(FunctionCommand(_update_node_group, ({"scalingConfig": _scaling(s)},), {}))
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
    if not changes:
        scaling = current["scaling"]
        host.noop(
            f"node group {group}: {s.node_group.instance_type}, "
            f"{scaling['minSize']} <= {scaling['desiredSize']} <= {scaling['maxSize']}"
        )
    yield from changes
