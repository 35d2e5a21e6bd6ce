"""Reading the EKS clusters and node groups from the AWS emulator, with boto3 (blocking: call it in a
worker thread).

One `read()` is one consistent-enough snapshot: every cluster with its status, ARN and the endpoint
`DescribeCluster` reports, and each of its node groups with the subnets (CIDR, availability zone and zone
id, from EC2) it spreads over.

`publish_endpoint` tells the emulator (`sim.awsemulator`'s admin route) where a cluster's API is served
and the CA it is known by (`new_certificate_authority`: a self-signed CA made once per cluster), so that
`DescribeCluster` reports them as EKS does: `aws eks update-kubeconfig` and SDK clients then reach it.
"""

from __future__ import annotations

import base64
import datetime
import json
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from sim.aws import client_env, eks_endpoint_path
from sim.eks.nodes import NodeGroup, Subnet

ACTIVE = "ACTIVE"
#: short timeouts, no retries: a poll that fails is simply done again half a second later
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1})
PUBLISH_TIMEOUT_SECONDS = 10.0
#: how long a cluster's CA is valid for (EKS's are valid for ten years)
CA_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class EksCluster:
    name: str
    arn: str
    status: str
    region: str
    nodegroups: tuple[NodeGroup, ...]
    #: what `DescribeCluster` reports as the cluster's API endpoint
    endpoint: str = ""

    @property
    def account(self) -> str:
        """The AWS account the cluster is in (the fifth field of its ARN)."""
        return self.arn.split(":")[4]


class Emulator:
    """boto3 clients for EKS and EC2 at `endpoint`, with the local cloud's credentials."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        env = client_env(endpoint)
        self.region = env["AWS_DEFAULT_REGION"]
        options: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": self.region,
            "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "config": CLIENT_CONFIG,
        }
        self.eks = boto3.client("eks", **options)
        self.ec2 = boto3.client("ec2", **options)

    def read(self) -> dict[str, EksCluster]:
        """Every EKS cluster by name; a cluster or group deleted while being read is left out."""
        out: dict[str, EksCluster] = {}
        for name in self._pages(self.eks.get_paginator("list_clusters").paginate(), "clusters"):
            try:
                cluster = self.eks.describe_cluster(name=name)["cluster"]
                groups = [
                    self.eks.describe_nodegroup(clusterName=name, nodegroupName=group)["nodegroup"]
                    for group in self._pages(
                        self.eks.get_paginator("list_nodegroups").paginate(clusterName=name), "nodegroups"
                    )
                ]
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    continue
                raise
            subnets = self._subnets({s for group in groups for s in group.get("subnets") or []})
            out[name] = EksCluster(
                name=name,
                arn=str(cluster["arn"]),
                status=str(cluster.get("status", ACTIVE)),
                region=self.region,
                nodegroups=tuple(NodeGroup.from_api(group, subnets) for group in groups),
                endpoint=str(cluster.get("endpoint") or ""),
            )
        return out

    def publish_endpoint(self, cluster: EksCluster, endpoint: str, ca_data: str) -> None:
        """Make `DescribeCluster` of `cluster` report `endpoint` and the CA `ca_data` (base64 of a PEM).
        `OSError` (`urllib.error.URLError`, `HTTPError`, ...) when the emulator did not: it is down, the
        cluster is gone, or it is a plain moto without the admin route."""
        path = eks_endpoint_path(cluster.account, cluster.region, cluster.name)
        request = urllib.request.Request(
            self.endpoint.rstrip("/") + path,
            data=json.dumps({"endpoint": endpoint, "certificateAuthority": {"data": ca_data}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=PUBLISH_TIMEOUT_SECONDS) as answer:
            body = answer.read()
        try:
            taken = json.loads(body).get("endpoint") == endpoint
        except (ValueError, AttributeError):
            taken = False
        if not taken:
            raise OSError(f"{self.endpoint} has no route {path} (not sim.awsemulator?)")

    def _subnets(self, ids: set[str]) -> dict[str, Subnet]:
        if not ids:
            return {}
        found = self.ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": sorted(ids)}])
        return {
            s["SubnetId"]: Subnet(
                s["SubnetId"], s["CidrBlock"], s["AvailabilityZone"], s.get("AvailabilityZoneId", "")
            )
            for s in found["Subnets"]
        }

    @staticmethod
    def _pages(pages: Iterable[dict[str, Any]], key: str) -> list[str]:
        return [item for page in pages for item in page.get(key) or []]


def new_certificate_authority() -> str:
    """A new self-signed CA certificate for a cluster's API, as `DescribeCluster` gives EKS's
    (`certificateAuthority.data`): base64 of its PEM; subject `CN=kubernetes` as EKS's, RSA 2048. Clients
    that load the CA whatever the scheme (lightkube, the Python `kubernetes` client) need a real one; the
    local API serves plain HTTP, so nothing is ever signed with its key, which is not kept."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("kubernetes")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.PEM)).decode()
