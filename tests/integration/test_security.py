"""The stage's security posture, read from the live AWS and Kubernetes state: nodes only in private
subnets, no public S3, encryption on, every pod non-root, and NetworkPolicies that admit exactly the
architecture's callers (and, where the stage's network enforces them, refuse everyone else)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod
from lightkube.resources.networking_v1 import NetworkPolicy

from infra.aws.eks import node_group_name
from infra.model.services import ANYWHERE, CALLERS, SERVICE_NAMES
from tests.integration.stages import Stage
from tests.k8s.conftest import kubectl_binary

NAME_LABEL = "app.kubernetes.io/name"


def test_nodes_run_only_in_private_subnets_that_route_out_through_a_nat(stage: Stage) -> None:
    settings = stage.settings
    ec2 = stage.aws("ec2")
    group = stage.aws("eks").describe_nodegroup(
        clusterName=settings.cluster_name, nodegroupName=node_group_name(settings)
    )["nodegroup"]
    subnets = ec2.describe_subnets(SubnetIds=group["subnets"])["Subnets"]
    assert sorted(s["CidrBlock"] for s in subnets) == sorted(str(c) for c in settings.private_subnets)
    for subnet in subnets:
        assert subnet["MapPublicIpOnLaunch"] is False
        tables = ec2.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}]
        )["RouteTables"]
        routes = [r for t in tables for r in t["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert routes, f"subnet {subnet['CidrBlock']} has no default route"
        assert all(r.get("NatGatewayId") and not r.get("GatewayId") for r in routes), (
            f"subnet {subnet['CidrBlock']} reaches the internet other than through a NAT gateway"
        )


def test_the_state_bucket_is_private_versioned_and_encrypted(stage: Stage) -> None:
    s3 = stage.aws("s3")
    bucket = stage.settings.state_bucket
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


def test_no_bucket_of_the_account_is_public(stage: Stage) -> None:
    s3 = stage.aws("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        grants = s3.get_bucket_acl(Bucket=bucket["Name"])["Grants"]
        public = [g for g in grants if "AllUsers" in str(g["Grantee"].get("URI", ""))]
        assert public == [], f"bucket {bucket['Name']} grants {public}"


def test_every_pod_of_the_shop_runs_as_a_non_root_user_without_privilege(stage: Stage) -> None:
    pods = stage.kube().list(Pod, namespace=stage.namespace)
    checked = 0
    for pod in pods:
        assert pod.spec is not None
        assert pod.metadata is not None
        pod_context = pod.spec.securityContext
        for container in pod.spec.containers:
            context = container.securityContext
            assert context is not None, f"{pod.metadata.name}/{container.name} has no securityContext"
            non_root = context.runAsNonRoot or (pod_context is not None and pod_context.runAsNonRoot)
            user = context.runAsUser if context.runAsUser is not None else (pod_context or context).runAsUser
            where = f"{pod.metadata.name}/{container.name}"
            assert non_root, f"{where} may run as root"
            assert user not in (None, 0), f"{where} runs as uid {user}"
            assert context.allowPrivilegeEscalation is False, f"{where} may escalate"
            assert not context.privileged, f"{where} is privileged"
            checked += 1
    assert checked >= len(SERVICE_NAMES)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions In/NotIn/Exists) selects `labels`."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def admitted(
    policies: list[dict[str, Any]], source: dict[str, str], target: dict[str, str], port: int
) -> bool:
    """Whether the namespace's ingress policies let a pod labelled `source` connect to one labelled
    `target` on `port` (both in the namespace), as a NetworkPolicy-enforcing network decides."""
    applying = [p for p in policies if selects(p["spec"]["podSelector"], target)]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get("ingress") or []:
            ports = [p.get("port") for p in rule.get("ports") or []]
            if ports and port not in ports:
                continue
            peers = rule.get("from")
            if not peers or any(
                "podSelector" in peer and selects(peer["podSelector"], source) for peer in peers
            ):
                return True
    return False


@pytest.fixture(scope="module")
def policies(stage: Stage) -> list[dict[str, Any]]:
    return [p.to_dict() for p in stage.kube().list(NetworkPolicy, namespace=stage.namespace)]


def test_every_pod_is_covered_by_a_network_policy(stage: Stage, policies: list[dict[str, Any]]) -> None:
    for pod in stage.kube().list(Pod, namespace=stage.namespace):
        labels = dict((pod.metadata.labels if pod.metadata else None) or {})
        assert any(selects(p["spec"]["podSelector"], labels) for p in policies), (
            f"no NetworkPolicy selects pod {pod.metadata.name if pod.metadata else '?'}"
        )


def test_the_network_policies_admit_exactly_the_declared_callers(policies: list[dict[str, Any]]) -> None:
    for service in SERVICE_NAMES:
        target = {NAME_LABEL: service}
        for caller in SERVICE_NAMES:
            allowed = admitted(policies, {NAME_LABEL: caller}, target, 8080)
            declared = caller in CALLERS[service] or ANYWHERE in CALLERS[service]
            assert allowed == declared, f"{caller} -> {service}: admitted {allowed}, declared {declared}"


def can_connect(stage: Stage, from_service: str, to_service: str, port: int = 8080) -> bool:
    """Whether a pod of `from_service` can open a TCP connection to `to_service` (through `kubectl exec`)."""
    code = f"import socket; socket.create_connection(({to_service!r}, {port}), 3).close()"
    done = subprocess.run(
        [
            str(kubectl_binary()),
            "--kubeconfig",
            str(stage.kubeconfig),
            "-n",
            stage.namespace,
            "exec",
            f"deploy/{stage.live_deployment(from_service)}",
            "--",
            "python",
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


def test_the_network_refuses_a_caller_the_policies_do_not_admit(stage: Stage) -> None:
    if not stage.enforces_network_policies:
        pytest.skip(f"the {stage.name} stage's network does not enforce NetworkPolicies")
    assert can_connect(stage, "checkout", "payment")
    assert not can_connect(stage, "payment", "accounting")
    assert not can_connect(stage, "recommendation", "cart")
