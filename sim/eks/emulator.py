"""Reading the EKS clusters and node groups from the AWS emulator, with boto3 (blocking: call it in a
worker thread).

One `read()` is one consistent-enough snapshot: every cluster with its status and ARN, and each of its node
groups with the subnets (CIDR, availability zone and zone id, from EC2) it spreads over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from sim.aws import client_env
from sim.eks.nodes import NodeGroup, Subnet

ACTIVE = "ACTIVE"
#: short timeouts, no retries: a poll that fails is simply done again half a second later
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1})


@dataclass(frozen=True)
class EksCluster:
    name: str
    arn: str
    status: str
    region: str
    nodegroups: tuple[NodeGroup, ...]


class Emulator:
    """boto3 clients for EKS and EC2 at `endpoint`, with the local cloud's credentials."""

    def __init__(self, endpoint: str) -> None:
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
            )
        return out

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
