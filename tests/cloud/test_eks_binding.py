"""The EKS binding (`python -m sim.eks`) against a real moto server, driven through boto3 alone and read
with the real kubectl: an EKS cluster with a node group of 2 t3.medium becomes a Kubernetes API with 2 Ready
Nodes labelled, sized and addressed like EKS's (a private address in the subnet of the node's zone, the
one its name carries, shown by `kubectl get nodes -o wide` and as its pods' host IP); `DescribeCluster`
reports the cluster's local API and a real CA certificate, so that the deploy's EKS-token access (a
lightkube client from them and a token made as `aws eks get-token` makes it) lists the nodes; changing
`desiredSize` adds a node or drains the surplus (the pods move); a Deployment of the payment image runs; a
node group of an unknown instance type is skipped with a warning; a second node group adds its nodes and
deleting it removes them; deleting the cluster stops its API and its pods; SIGTERM, even during a drain a
disruption budget holds up, stops every cluster and pod and removes the state.

The tests are steps of one story, in file order, on one binding process.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from cryptography import x509
from lightkube.resources.core_v1 import Node

from containers.nodestore import ImageStore
from infra.cloud import Cloud
from infra.k8s import access
from infra.settings import Settings
from sim.supervisor.process import ManagedProcess, free_port, http_ok, tcp_open
from tests.conftest import BuiltImage
from tests.k8s.conftest import Kubectl, kubectl_binary
from tests.kubelet.helpers import alive
from tests.support.cluster import condition, get_json, payment_container, poll
from tests.support.pyinfra_run import emulator_data

HOST = "127.0.0.1"
CLUSTER = "shop"
NODEGROUP = "workers"
#: this module's clusters take 127.180.0.0/16 and up (pods 127.180.0/17, Services 127.180.128/17)
ADDRESS_BLOCKS = "180-183"
SUBNETS = {"10.0.1.0/24": "us-east-1a", "10.0.2.0/24": "us-east-1b", "10.0.3.0/24": "us-east-1c"}
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
NODE_NAME = re.compile(r"^ip-10-0-[123]-\d+\.ec2\.internal$")


@dataclass
class Binding:
    process: ManagedProcess
    url: str
    state_dir: Path
    aws: dict[str, Any]
    subnets: list[str]
    first_nodes: tuple[str, ...] = ()
    #: each node's InternalIP, by name, as first seen
    node_ips: dict[str, str] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return boto3.client(service, **self.aws)

    def clusters(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/clusters", timeout=5).json())

    def kubectl(self, cluster: str = CLUSTER) -> Kubectl:
        binary = kubectl_binary()
        assert binary is not None
        return Kubectl(binary, self.state_dir / "kubeconfig" / cluster)


@pytest.fixture(scope="module")
def binding(
    tmp_path_factory: pytest.TempPathFactory, aws_env: dict[str, str], payment_image: BuiltImage
) -> Iterator[Binding]:
    if kubectl_binary() is None:
        pytest.skip("no kubectl binary on this machine")
    state_dir = tmp_path_factory.mktemp("eks")
    ImageStore(state_dir / "images").load(payment_image.layout)
    aws = {
        "endpoint_url": aws_env["AWS_ENDPOINT_URL"],
        "region_name": aws_env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": aws_env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": aws_env["AWS_SECRET_ACCESS_KEY"],
    }
    ec2 = boto3.client("ec2", **aws)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in SUBNETS.items()
    ]
    port = free_port(HOST)
    process = ManagedProcess(
        "eks-binding",
        [
            sys.executable,
            "-m",
            "sim.eks",
            "--aws-endpoint",
            aws_env["AWS_ENDPOINT_URL"],
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
            "--address-blocks",
            ADDRESS_BLOCKS,
        ],
        state_dir / "eks.log",
        env={k: v for k, v in os.environ.items() if k != "SHOPSTACK_IMAGE_STORE"},
    ).start()
    url = f"http://{HOST}:{port}"
    try:
        process.wait_ready(lambda: http_ok(f"{url}/healthz"), timeout=30)
        yield Binding(process, url, state_dir, aws, subnets)
    finally:
        process.stop(grace=30)


def nodes(kubectl: Kubectl) -> list[dict[str, Any]]:
    return list(get_json(kubectl, "nodes")["items"])


def internal_ip(node: dict[str, Any]) -> str:
    (ip,) = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    return str(ip)


def wide_column(table: str, column: str) -> dict[str, str]:
    """A column of `kubectl get ... -o wide` by the row's name (kubectl aligns values under headers)."""
    header, *rows = table.splitlines()
    start = header.index(column)
    return {row.split()[0]: row[start:].split()[0] for row in rows if row.strip()}


def check_addresses(binding: Binding, found: list[dict[str, Any]]) -> None:
    """Each node is addressed as EKS's are: its InternalIP is the private address its name carries, in
    the CIDR of the subnet of its zone, unique, and the same as when first seen; its private DNS name is
    its InternalDNS and Hostname; `kubectl get nodes -o wide` shows that address."""
    subnets = binding.client("ec2").describe_subnets(SubnetIds=binding.subnets)["Subnets"]
    by_zone = {s["AvailabilityZone"]: s for s in subnets}
    for node in found:
        name, labels = node["metadata"]["name"], node["metadata"]["labels"]
        ip = internal_ip(node)
        assert name == f"ip-{ip.replace('.', '-')}.ec2.internal", (name, ip)
        subnet = by_zone[labels["topology.kubernetes.io/zone"]]
        network = ipaddress.ip_network(subnet["CidrBlock"])
        assert ipaddress.ip_address(ip) in network, (ip, network)
        assert labels["topology.k8s.aws/zone-id"] == subnet["AvailabilityZoneId"]
        assert labels["failure-domain.beta.kubernetes.io/zone"] == subnet["AvailabilityZone"]
        assert {"type": "InternalDNS", "address": name} in node["status"]["addresses"]
        assert {"type": "Hostname", "address": name} in node["status"]["addresses"]
        assert binding.node_ips.setdefault(name, ip) == ip, "a node's address changed"
    ips = [internal_ip(n) for n in found]
    assert len(set(ips)) == len(ips), ips
    table = binding.kubectl()("get", "nodes", "-o", "wide")
    assert wide_column(table, "INTERNAL-IP") == {n["metadata"]["name"]: internal_ip(n) for n in found}, table


def ready_nodes(kubectl: Kubectl, count: int) -> list[dict[str, Any]]:
    """The nodes, once there are exactly `count` and all are Ready (bounded); the last seen otherwise."""

    def check() -> list[dict[str, Any]]:
        found = nodes(kubectl)
        ok = len(found) == count and all(condition(n, "Ready").get("status") == "True" for n in found)
        return found if ok else []

    return poll(check, within=30) or nodes(kubectl)


def set_desired(binding: Binding, size: int) -> None:
    binding.client("eks").update_nodegroup_config(
        clusterName=CLUSTER,
        nodegroupName=NODEGROUP,
        scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": size},
    )


def test_eks_cluster_and_node_group_yield_ready_nodes_in_the_subnets_zones(binding: Binding) -> None:
    iam = binding.client("iam")
    role = iam.create_role(RoleName="shop-eks", AssumeRolePolicyDocument=json.dumps(ROLE_POLICY))["Role"]
    eks = binding.client("eks")
    arn = eks.create_cluster(
        name=CLUSTER,
        version="1.30",
        roleArn=role["Arn"],
        resourcesVpcConfig={"subnetIds": binding.subnets},
    )["cluster"]["arn"]
    eks.create_nodegroup(
        clusterName=CLUSTER,
        nodegroupName=NODEGROUP,
        nodeRole=role["Arn"],
        subnets=binding.subnets,
        instanceTypes=["t3.medium"],
        scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2},
    )
    kubeconfig = binding.state_dir / "kubeconfig" / CLUSTER
    assert poll(kubeconfig.exists), f"no kubeconfig{binding.process.log_tail()}"
    kubectl = binding.kubectl()
    assert kubectl("config", "current-context").strip() == arn

    found = ready_nodes(kubectl, 2)
    assert len(found) == 2, [n["metadata"]["name"] for n in found]
    zones = set()
    for node in found:
        name, labels = node["metadata"]["name"], node["metadata"]["labels"]
        assert NODE_NAME.match(name), name
        assert labels["node.kubernetes.io/instance-type"] == "t3.medium"
        assert labels["eks.amazonaws.com/nodegroup"] == NODEGROUP
        assert labels["eks.amazonaws.com/capacityType"] == "ON_DEMAND"
        assert labels["topology.kubernetes.io/region"] == "us-east-1"
        assert labels["kubernetes.io/hostname"] == name
        zone = labels["topology.kubernetes.io/zone"]
        address = ipaddress.ip_address(name.split(".")[0].removeprefix("ip-").replace("-", "."))
        (cidr,) = [c for c in SUBNETS if address in ipaddress.ip_network(c)]
        assert SUBNETS[cidr] == zone, (name, zone)
        zones.add(zone)
        capacity = node["status"]["capacity"]
        assert {k: capacity[k] for k in ("cpu", "memory", "pods")} == {
            "cpu": "2",
            "memory": "4Gi",
            "pods": "17",
        }
        assert node["status"]["allocatable"] == capacity
    assert len(zones) == 2, zones  # spread over the subnets' zones, round robin
    check_addresses(binding, found)
    binding.first_nodes = tuple(n["metadata"]["name"] for n in found)

    table = kubectl("get", "nodes", "-L", "topology.kubernetes.io/zone")
    assert table.count(" Ready ") == 2, table
    listed = binding.clusters()[CLUSTER]
    assert sorted(listed["nodes"]) == sorted(n["metadata"]["name"] for n in found)
    assert json.loads((binding.state_dir / "clusters.json").read_text()) == binding.clusters()
    assert httpx.get(f"{listed['api']}/version", timeout=5).status_code == 200


def test_describe_cluster_reports_the_local_api_which_the_deploys_eks_token_access_reaches(
    binding: Binding,
) -> None:
    """What the deploy does in AWS with `kube_access = "eks-token"` (`infra.k8s.access`) works locally: a
    lightkube client from `DescribeCluster`'s endpoint and CA (which lightkube loads whatever the scheme:
    it must be a certificate), with a bearer token made as `aws eks get-token` makes it, lists the nodes."""
    api = binding.clusters()[CLUSTER]["api"]
    eks = binding.client("eks")
    assert poll(lambda: eks.describe_cluster(name=CLUSTER)["cluster"]["endpoint"] == api), (
        eks.describe_cluster(name=CLUSTER)["cluster"]["endpoint"],
        binding.process.log_tail(),
    )
    cluster = eks.describe_cluster(name=CLUSTER)["cluster"]
    assert cluster["status"] == "ACTIVE"
    pem = base64.b64decode(cluster["certificateAuthority"]["data"], validate=True)
    certificate = x509.load_pem_x509_certificate(pem)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.subject == certificate.issuer  # self-signed, as EKS's cluster CA
    assert certificate.subject.rfc4514_string() == "CN=kubernetes"

    settings = Settings.parse(
        emulator_data(binding.aws["endpoint_url"], kube_access="eks-token", project=CLUSTER)
    )
    cloud = Cloud(settings)
    client = access.connect(cloud)
    assert client is not None
    assert sorted(str(node.metadata.name) for node in client.list(Node) if node.metadata) == sorted(
        binding.first_nodes
    )
    assert cloud.calls["kubernetes get"] >= 1


def test_raising_desired_size_adds_a_node_in_the_third_zone(binding: Binding) -> None:
    kubectl = binding.kubectl()
    before = {n["metadata"]["name"] for n in nodes(kubectl)}
    set_desired(binding, 3)
    found = ready_nodes(kubectl, 3)
    names = {n["metadata"]["name"] for n in found}
    assert len(names) == 3, names
    assert before < names
    assert {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in found} == set(SUBNETS.values())
    check_addresses(binding, found)


def test_payment_deployment_runs_on_the_nodes(binding: Binding, payment_image: BuiltImage) -> None:
    kubectl = binding.kubectl()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "payment", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "payment"}},
            "template": {
                "metadata": {"labels": {"app": "payment"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    # 1Gi each: the scheduler spreads them, and all fit on one t3.medium
                    "containers": [payment_container(payment_image.reference, requests={"memory": "1Gi"})],
                },
            },
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(deployment))
    kubectl.run("rollout", "status", "deployment/payment", "--timeout=90s", timeout=100)
    pods = get_json(kubectl, "pods", "-l", "app=payment")["items"]
    assert len(pods) == 3
    assert len({p["spec"]["nodeName"] for p in pods}) == 3, "one pod on each node"
    for pod in pods:
        assert pod["status"]["hostIP"] == binding.node_ips[pod["spec"]["nodeName"]], pod["status"]
        assert pod["status"]["podIP"].startswith("127.180."), pod["status"]
        with httpx.Client(timeout=5, trust_env=False) as client:
            assert client.get(f"http://{pod['status']['podIP']}:8080/healthz").status_code == 200


def test_lowering_desired_size_drains_to_one_node_and_the_pods_move(binding: Binding) -> None:
    kubectl = binding.kubectl()
    set_desired(binding, 1)
    found = ready_nodes(kubectl, 1)
    assert len(found) == 1, [n["metadata"]["name"] for n in found]
    (survivor,) = found
    assert survivor["metadata"]["name"] in binding.first_nodes  # the newest go first
    check_addresses(binding, found)
    assert not (survivor.get("spec") or {}).get("unschedulable")

    def all_pods_ready_on_survivor() -> bool:
        pods = get_json(kubectl, "pods", "-l", "app=payment")["items"]
        return len(pods) == 3 and all(
            p["spec"].get("nodeName") == survivor["metadata"]["name"]
            and condition(p, "Ready").get("status") == "True"
            for p in pods
        )

    assert poll(all_pods_ready_on_survivor, within=90), kubectl("get", "pods", "-o", "wide")


def test_a_node_group_of_an_unknown_instance_type_is_skipped_with_a_warning(binding: Binding) -> None:
    eks = binding.client("eks")
    role = binding.client("iam").get_role(RoleName="shop-eks")["Role"]["Arn"]
    eks.create_nodegroup(
        clusterName=CLUSTER,
        nodegroupName="exotic",
        nodeRole=role,
        subnets=binding.subnets,
        instanceTypes=["x9.mega"],
        scalingConfig={"minSize": 1, "maxSize": 1, "desiredSize": 1},
    )
    assert poll(lambda: "x9.mega" in binding.process.log_tail(200)), binding.process.log_tail()
    assert "node group exotic is skipped" in binding.process.log_tail(200)
    assert len(nodes(binding.kubectl())) == 1
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName="exotic")


def test_a_second_node_group_adds_its_nodes_and_deleting_it_removes_them(binding: Binding) -> None:
    eks = binding.client("eks")
    role = binding.client("iam").get_role(RoleName="shop-eks")["Role"]["Arn"]
    eks.create_nodegroup(
        clusterName=CLUSTER,
        nodegroupName="large",
        nodeRole=role,
        subnets=binding.subnets[2:],
        instanceTypes=["t3.large"],
        capacityType="SPOT",
        scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1},
    )
    kubectl = binding.kubectl()
    found = ready_nodes(kubectl, 2)
    (large,) = [n for n in found if n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "large"]
    assert large["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-east-1c"
    assert large["metadata"]["labels"]["eks.amazonaws.com/capacityType"] == "SPOT"
    assert {k: large["status"]["capacity"][k] for k in ("cpu", "memory", "pods")} == {
        "cpu": "2",
        "memory": "8Gi",
        "pods": "35",
    }
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName="large")
    (left,) = ready_nodes(kubectl, 1)
    assert left["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == NODEGROUP


def test_deleting_the_cluster_stops_its_api_and_its_pods(binding: Binding) -> None:
    kubectl = binding.kubectl()
    api = binding.clusters()[CLUSTER]["api"]
    pods = get_json(kubectl, "pods", "-l", "app=payment")["items"]
    pids = [
        int(status["containerID"].removeprefix("process://"))
        for pod in pods
        for status in pod["status"]["containerStatuses"]
    ]
    assert pids
    assert all(alive(pid) for pid in pids)
    eks = binding.client("eks")
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP)
    eks.delete_cluster(name=CLUSTER)

    host, port = httpx.URL(api).host, httpx.URL(api).port
    assert port is not None
    assert poll(lambda: not tcp_open(host, port), within=60), "the cluster's API still answers"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api}/version", timeout=5)
    assert poll(lambda: not any(alive(pid) for pid in pids), within=20), "pod processes outlived the cluster"
    assert poll(lambda: CLUSTER not in binding.clusters())
    assert not (binding.state_dir / "kubeconfig" / CLUSTER).exists()


def test_sigterm_during_a_blocked_drain_stops_every_cluster_and_pod_and_removes_the_state(
    binding: Binding, payment_image: BuiltImage
) -> None:
    iam, eks = binding.client("iam"), binding.client("eks")
    role = iam.get_role(RoleName="shop-eks")["Role"]["Arn"]
    eks.create_cluster(name="last", roleArn=role, resourcesVpcConfig={"subnetIds": binding.subnets})
    eks.create_nodegroup(
        clusterName="last",
        nodegroupName="one",
        nodeRole=role,
        subnets=binding.subnets,
        instanceTypes=["t3.large"],
        scalingConfig={"minSize": 0, "maxSize": 1, "desiredSize": 1},
    )
    assert poll(lambda: (binding.state_dir / "kubeconfig" / "last").exists())
    kubectl = binding.kubectl("last")
    (node,) = ready_nodes(kubectl, 1)
    assert node["status"]["capacity"]["memory"] == "8Gi"
    assert node["status"]["capacity"]["pods"] == "35"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "payment", "namespace": "default", "labels": {"app": "payment"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [payment_container(payment_image.reference)],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(pod))
    kubectl.run("wait", "--for=condition=Ready", "pod/payment", "--timeout=60s", timeout=70)
    running = get_json(kubectl, "pod", "payment")
    assert running["status"]["podIP"].startswith("127.180."), running["status"]  # the first block again
    pid = int(running["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
    api = binding.clusters()["last"]["api"]
    # a budget that forbids evicting the pod: scaling to 0 then drains the node for a long time
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "payment", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "payment"}}},
    }
    kubectl("apply", "-f", "-", input=json.dumps(budget))
    assert poll(lambda: "disruptionsAllowed" in kubectl("get", "pdb", "payment", "-o", "json"))
    eks.update_nodegroup_config(
        clusterName="last", nodegroupName="one", scalingConfig={"minSize": 0, "maxSize": 1, "desiredSize": 0}
    )
    assert poll(
        lambda: (get_json(kubectl, "node", node["metadata"]["name"]).get("spec") or {}).get("unschedulable")
    )
    assert alive(pid), "the budget let the pod be evicted"
    # the held-up drain holds up no other cluster
    eks.create_cluster(name="extra", roleArn=role, resourcesVpcConfig={"subnetIds": binding.subnets})
    assert poll(lambda: (binding.state_dir / "kubeconfig" / "extra").exists(), within=20)
    extra_api = binding.clusters()["extra"]["api"]
    assert alive(pid)

    binding.process.signal(signal.SIGTERM)
    assert binding.process.popen is not None
    # well before the drain would give up on the budget (60 s) and delete the pod anyway
    assert binding.process.popen.wait(timeout=30) == 0, binding.process.log_tail()
    assert not alive(pid)
    assert not tcp_open(HOST, int(api.rsplit(":", 1)[1]))
    assert not tcp_open(HOST, int(extra_api.rsplit(":", 1)[1]))
    assert not (binding.state_dir / "clusters.json").exists()
    assert not (binding.state_dir / "kubeconfig" / "last").exists()
