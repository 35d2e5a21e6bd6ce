"""The load balancers the cluster's controller made for the deploy's Ingress, which teardown must see gone
before it deletes the network they stand in (an ALB holds interfaces in the public subnets)."""

from __future__ import annotations

import time
from collections.abc import Generator

from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.cloud import Cloud, cloud_of
from infra.fact import ApiFact
from infra.failure import fail

#: the tag the AWS Load Balancer Controller (and the local cloud's) puts on what it makes for a cluster
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
POLL_SECONDS = 2.0


def cluster_load_balancers(cloud: Cloud, cluster_name: str) -> list[str]:
    """The ARNs of the load balancers tagged for `cluster_name`."""
    elbv2 = cloud.client("elbv2")
    arns = [lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers().get("LoadBalancers", [])]
    ours: list[str] = []
    for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 resources
        for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            tags = {tag["Key"]: tag["Value"] for tag in description.get("Tags", [])}
            if tags.get(CLUSTER_TAG) == cluster_name:
                ours.append(description["ResourceArn"])
    return ours


class ClusterLoadBalancers(ApiFact[list[str]]):
    def command(self, cluster_name: str) -> str:
        return self.request(cluster_name=cluster_name)

    def read(self, cloud: Cloud, cluster_name: str) -> list[str]:  # type: ignore[override]
        return cluster_load_balancers(cloud, cluster_name)


def _wait_gone(state: State, host: Host, timeout: float) -> bool:
    cloud = cloud_of(host)
    deadline = time.monotonic() + timeout
    while remaining := cluster_load_balancers(cloud, cloud.settings.cluster_name):
        if time.monotonic() > deadline:
            return fail(
                host,
                f"{len(remaining)} load balancers of cluster {cloud.settings.cluster_name} are still there "
                f"after {timeout:.0f}s (its Ingress controller deletes them): {', '.join(remaining)}",
            )
        time.sleep(POLL_SECONDS)
    return True


@operation(is_idempotent=False)
def load_balancers_gone(timeout: float = 300) -> Generator[FunctionCommand, None, None]:
    """Wait until the cluster's Ingress controller has deleted the load balancers it made."""
    settings = cloud_of(host).settings
    if not host.get_fact(ClusterLoadBalancers, cluster_name=settings.cluster_name):
        host.noop(f"cluster {settings.cluster_name} has no load balancers")
        return
    yield FunctionCommand(_wait_gone, (timeout,), {})
