"""What an EKS user does first works against the local cloud as against AWS: `aws eks update-kubeconfig
--name shopstack --endpoint-url <emulator>` (the real AWS CLI) writes a kubeconfig from `DescribeCluster`,
whose endpoint is the cluster's local API (`http://127.0.0.1:<port>`) and whose CA is a real certificate;
the real kubectl then lists the node group's nodes. The kubeconfig's user runs `aws eks get-token`; kubectl
runs it only for an https:// server (client-go reads a kubeconfig's credentials only for TLS servers, and
for an http:// one neither loads the CA nor sends a token), so the token that command makes is checked
apart: the API takes it as a bearer token. The emulator (`python -m sim.awsemulator`) takes the endpoint
from the EKS binding on its admin route, and the binding sets it again should it change.

One AWS emulator and one EKS binding process for the module, with one cluster of 2 nodes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml

from sim import aws
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.k8s.conftest import Kubectl, kubectl_binary
from tests.support.cluster import poll
from tests.support.moto import start_moto

pytestmark = pytest.mark.timeout(120)

HOST = "127.0.0.1"
CLUSTER = "shopstack"
ACCOUNT = "123456789012"
#: this module's cluster takes 127.196.0.0/16 (pods 127.196.0/17, Services 127.196.128/17)
ADDRESS_BLOCKS = "196-197"
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@dataclass
class LocalEks:
    aws_endpoint: str
    binding_url: str
    binding: ManagedProcess
    state_dir: Path

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.aws_endpoint,
            region_name=aws.REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def api(self) -> str:
        return str(httpx.get(f"{self.binding_url}/clusters", timeout=5).json()[CLUSTER]["api"])

    def described(self) -> dict[str, Any]:
        return dict(self.client("eks").describe_cluster(name=CLUSTER)["cluster"])


@pytest.fixture(scope="module")
def local_eks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEks]:
    if kubectl_binary() is None:
        pytest.skip("no kubectl binary on this machine")
    state_dir = tmp_path_factory.mktemp("eks-first-contact")
    aws_port = free_port(HOST)
    moto = start_moto(state_dir, HOST, aws_port)
    endpoint = f"http://{HOST}:{aws_port}"
    try:
        port = free_port(HOST)
        binding = ManagedProcess(
            "eks-binding",
            [
                sys.executable,
                "-m",
                "sim.eks",
                "--aws-endpoint",
                endpoint,
                "--state-dir",
                str(state_dir / "eks"),
                "--port",
                str(port),
                "--address-blocks",
                ADDRESS_BLOCKS,
            ],
            state_dir / "eks.log",
            env={k: v for k, v in os.environ.items() if k != "SHOPSTACK_IMAGE_STORE"},
        ).start()
        try:
            binding.wait_ready(lambda: http_ok(f"http://{HOST}:{port}/healthz"), timeout=30)
            local = LocalEks(endpoint, f"http://{HOST}:{port}", binding, state_dir)
            _create_cluster(local)
            yield local
        finally:
            binding.stop(grace=30)
    finally:
        moto.stop()


def _create_cluster(local: LocalEks) -> None:
    ec2 = local.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = {"10.0.1.0/24": "us-east-1a", "10.0.2.0/24": "us-east-1b"}
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in zones.items()
    ]
    role = local.client("iam").create_role(RoleName="eks", AssumeRolePolicyDocument=json.dumps(ROLE_POLICY))
    eks = local.client("eks")
    eks.create_cluster(
        name=CLUSTER, version="1.30", roleArn=role["Role"]["Arn"], resourcesVpcConfig={"subnetIds": subnets}
    )
    eks.create_nodegroup(
        clusterName=CLUSTER,
        nodegroupName="workers",
        nodeRole=role["Role"]["Arn"],
        subnets=subnets,
        instanceTypes=["t3.medium"],
        scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 2},
    )
    assert poll(lambda: CLUSTER in httpx.get(f"{local.binding_url}/clusters", timeout=5).json(), within=30), (
        local.binding.log_tail()
    )
    assert poll(lambda: local.described()["endpoint"] == local.api(), within=30), local.binding.log_tail()


def _user_shell(tmp_path: Path) -> dict[str, str]:
    """A user's shell: the emulator's credentials and region, no AWS configuration files, no endpoint
    variable (the user passes `--endpoint-url`; `aws eks get-token` signs locally and calls nothing)."""
    if shutil.which("aws") is None:
        pytest.skip("no AWS CLI (`aws`) on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "KUBECONFIG"}
    return {
        **env,
        **aws.CREDENTIALS,
        "AWS_DEFAULT_REGION": aws.REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "absent-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-aws-credentials"),
    }


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_describe_cluster_reports_the_local_api_and_a_certificate_authority(local_eks: LocalEks) -> None:
    cluster = local_eks.described()
    assert cluster["endpoint"] == local_eks.api()
    assert cluster["endpoint"].startswith(f"http://{HOST}:")
    pem = base64.b64decode(cluster["certificateAuthority"]["data"], validate=True).decode()
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n")
    assert pem.rstrip().endswith("-----END CERTIFICATE-----")


def test_update_kubeconfig_then_kubectl_get_nodes(local_eks: LocalEks, tmp_path: Path) -> None:
    env = _user_shell(tmp_path)
    kubeconfig = tmp_path / "kube" / "config"
    update = _run(
        ["aws", "eks", "update-kubeconfig", "--name", CLUSTER, "--kubeconfig", str(kubeconfig),
         "--endpoint-url", local_eks.aws_endpoint],
        env,
    )  # fmt: skip
    assert update.returncode == 0, update.stderr
    arn = f"arn:aws:eks:{aws.REGION}:{ACCOUNT}:cluster/{CLUSTER}"
    assert f"Added new context {arn} to {kubeconfig}" in update.stdout

    written = yaml.safe_load(kubeconfig.read_text())
    cluster = local_eks.described()
    (entry,) = written["clusters"]
    assert entry["cluster"]["server"] == cluster["endpoint"] == local_eks.api()
    assert entry["cluster"]["certificate-authority-data"] == cluster["certificateAuthority"]["data"]
    assert written["current-context"] == arn

    binary = kubectl_binary()
    assert binary is not None
    get = _run([binary, "--kubeconfig", str(kubeconfig), "--request-timeout=20s", "get", "nodes"], env)
    assert get.returncode == 0, get.stderr
    rows = [line.split() for line in get.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 2, get.stdout
    assert all(row[1] == "Ready" for row in rows), get.stdout
    binding_kubeconfig = local_eks.state_dir / "eks" / "kubeconfig" / CLUSTER
    names = Kubectl(binary, binding_kubeconfig)("get", "nodes", "-o", "name").split()
    assert sorted(f"node/{row[0]}" for row in rows) == sorted(names)


def test_the_kubeconfigs_exec_credential_is_a_token_the_api_takes(
    local_eks: LocalEks, tmp_path: Path
) -> None:
    env = _user_shell(tmp_path)
    kubeconfig = tmp_path / "config"
    update = _run(
        ["aws", "eks", "update-kubeconfig", "--name", CLUSTER, "--kubeconfig", str(kubeconfig),
         "--endpoint-url", local_eks.aws_endpoint],
        env,
    )  # fmt: skip
    assert update.returncode == 0, update.stderr
    written = yaml.safe_load(kubeconfig.read_text())
    ((user,), (entry,)) = written["users"], written["clusters"]
    plugin = user["user"]["exec"]
    assert plugin["command"] == "aws"
    assert plugin["args"][2:6] == ["eks", "get-token", "--cluster-name", CLUSTER]
    # what kubectl does with an exec plugin: run it with KUBERNETES_EXEC_INFO, read its ExecCredential
    info = {"apiVersion": plugin["apiVersion"], "kind": "ExecCredential", "spec": {"interactive": False}}
    made = _run([plugin["command"], *plugin["args"]], {**env, "KUBERNETES_EXEC_INFO": json.dumps(info)})
    assert made.returncode == 0, made.stderr
    credential = json.loads(made.stdout)
    assert credential["kind"] == "ExecCredential"
    assert credential["apiVersion"] == plugin["apiVersion"]
    token = credential["status"]["token"]
    assert token.startswith("k8s-aws-v1.")
    listed = httpx.get(
        f"{entry['cluster']['server']}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == 2


def test_the_binding_sets_the_endpoint_again_when_it_changes(local_eks: LocalEks) -> None:
    before = local_eks.described()
    path = aws.eks_endpoint_path(ACCOUNT, aws.REGION, CLUSTER)
    other = {"endpoint": "http://127.0.0.1:9", "certificateAuthority": {"data": "Y2E="}}
    answer = httpx.post(local_eks.aws_endpoint + path, json=other, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["endpoint"] == "http://127.0.0.1:9"
    assert poll(lambda: local_eks.described()["endpoint"] == before["endpoint"], within=30)
    # the cluster's CA is made once: the same one is given again
    assert local_eks.described()["certificateAuthority"] == before["certificateAuthority"]


def test_the_admin_route_refuses_what_it_cannot_do(local_eks: LocalEks) -> None:
    base = local_eks.aws_endpoint
    good = {"endpoint": "http://127.0.0.1:9", "certificateAuthority": {"data": "Y2E="}}
    missing = httpx.post(base + aws.eks_endpoint_path(ACCOUNT, aws.REGION, "absent"), json=good, timeout=5)
    assert missing.status_code == 404, missing.text
    path = base + aws.eks_endpoint_path(ACCOUNT, aws.REGION, CLUSTER)
    assert httpx.post(path, json={"endpoint": "127.0.0.1:9"}, timeout=5).status_code == 400
    assert httpx.post(path, content=b"not json", timeout=5).status_code == 400
    assert httpx.get(path, timeout=5).status_code == 405
    assert httpx.post(base + "/_shopstack/elsewhere", json=good, timeout=5).status_code == 404
    assert http_ok(base + aws.HEALTH_PATH)  # moto's own paths are moto's
    assert local_eks.described()["endpoint"] == local_eks.api()
