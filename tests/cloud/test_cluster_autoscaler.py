"""The cluster autoscaler's stand-in (`sim.standins.cluster_autoscaler`) with the real AWS emulator and the
EKS binding's local cluster: the model's own Deployment of the autoscaler (`infra.model.cluster_autoscaler`,
its times shortened through the settings' flags) runs as its image's stand-in in kube-system and, through
the Kubernetes API and EKS's `UpdateNodegroupConfig`, raises a node group of 1 t3.medium (max 2) when a pod
is unschedulable, not above its max, and after the unneeded time removes the node the pods leave idle, but
not while a pod annotated `safe-to-evict: "false"` or one a disruption budget protects is on it. The
emulator refuses sizes outside min..max as EKS does. Then the rules themselves, offline.

The cluster tests are steps of one story, in file order, on one binding.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from infra.model import ModelConfig, images
from infra.model.cluster_autoscaler import cluster_autoscaler_objects, discovery_tags
from infra.model.config import Autoscaling
from sim.eks.nodes import NodeGroup, Subnet, plan_nodes
from sim.standins import cluster_autoscaler as ca
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.k8s.conftest import Kubectl, kubectl_binary
from tests.support.cluster import condition, get_json, poll
from tests.support.moto import start_moto

HOST = "127.0.0.1"
CLUSTER = "scaling"
GROUP = "workers"
ADDRESS_BLOCKS = "184-186"
SUBNETS = {"10.0.1.0/24": "us-east-1a", "10.0.2.0/24": "us-east-1b", "10.0.3.0/24": "us-east-1c"}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
#: the autoscaler's times, as the settings give them on a fast clock
TIMES = Autoscaling(
    scan_interval_seconds=1,
    scale_down_unneeded_seconds=4,
    scale_down_delay_after_add_seconds=6,
    scale_down_delay_after_failure_seconds=5,
)
SLEEPER = ["python3", "-c", "import time\nwhile True: time.sleep(60)"]
#: how long a step waits for the autoscaler and the binding (scans are a second apart)
STEP_SECONDS = 90


@dataclass
class Cloud:
    aws: dict[str, Any]
    state_dir: Path
    kubectl: Kubectl
    binding: ManagedProcess

    def eks(self) -> Any:
        return boto3.client("eks", **self.aws)

    def sizes(self) -> dict[str, int]:
        group = self.eks().describe_nodegroup(clusterName=CLUSTER, nodegroupName=GROUP)["nodegroup"]
        return dict(group["scalingConfig"])

    def nodes(self) -> list[dict[str, Any]]:
        return list(get_json(self.kubectl, "nodes")["items"])

    def ready_nodes(self) -> list[str]:
        return [n["metadata"]["name"] for n in self.nodes() if condition(n, "Ready").get("status") == "True"]

    def pods(self, app: str) -> list[dict[str, Any]]:
        return list(get_json(self.kubectl, "pods", "-n", "default", "-l", f"app={app}")["items"])

    def events(self, reason: str) -> list[dict[str, Any]]:
        found = get_json(self.kubectl, "events", "-A")["items"]
        return [e for e in found if e.get("reason") == reason]

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))

    def logs(self) -> str:
        return self.kubectl.run("logs", "-n", "kube-system", "deploy/cluster-autoscaler", check=False).stdout[
            -3000:
        ]


def sleeper(name: str, replicas: int, cpu: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "app",
                    "image": images.PYTHON,
                    "command": SLEEPER,
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                }
            ],
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
    }


def budget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {**spec, "selector": {"matchLabels": {"app": name}}},
    }


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl binary on this machine")
    state_dir = tmp_path_factory.mktemp("autoscaling")
    port = free_port(HOST)
    moto = start_moto(state_dir / "logs", HOST, port)
    endpoint = f"http://{HOST}:{port}"
    aws = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    binding_port = free_port(HOST)
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
            str(binding_port),
            "--address-blocks",
            ADDRESS_BLOCKS,
            "--image-store",
            str(state_dir / "images"),
        ],
        state_dir / "eks.log",
    ).start()
    try:
        binding.wait_ready(lambda: http_ok(f"http://{HOST}:{binding_port}/healthz"), timeout=30)
        ec2, iam, eks = (boto3.client(s, **aws) for s in ("ec2", "iam", "eks"))
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
            for cidr, zone in SUBNETS.items()
        ]
        role = iam.create_role(RoleName="scaling-eks", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"][
            "Arn"
        ]
        eks.create_cluster(
            name=CLUSTER, version="1.30", roleArn=role, resourcesVpcConfig={"subnetIds": subnets}
        )
        eks.create_nodegroup(
            clusterName=CLUSTER,
            nodegroupName=GROUP,
            nodeRole=role,
            subnets=subnets,
            instanceTypes=["t3.medium"],
            scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1},
            tags=discovery_tags(CLUSTER),
        )
        kubeconfig = state_dir / "eks" / "kubeconfig" / CLUSTER
        assert poll(kubeconfig.exists, within=60), binding.log_tail()
        made = Cloud(aws, state_dir, Kubectl(binary, kubeconfig), binding)
        assert poll(lambda: len(made.ready_nodes()) == 1, within=60), binding.log_tail()
        config = ModelConfig(
            images={},
            stage="local",
            region="us-east-1",
            cluster_name=CLUSTER,
            aws_endpoint_url=endpoint,
            aws_credentials=("testing", "testing"),
            autoscaling=TIMES,
        )
        made.apply(*cluster_autoscaler_objects(config))
        running = poll(
            lambda: any(
                condition(p, "Ready").get("status") == "True"
                for p in get_json(made.kubectl, "pods", "-n", "kube-system")["items"]
            ),
            within=60,
        )
        assert running, made.kubectl("get", "pods", "-A", "-o", "wide") + made.logs()
        yield made
    finally:
        binding.stop(grace=30)
        moto.stop()


def test_the_emulator_refuses_sizes_outside_min_and_max_as_eks_does(cloud: Cloud) -> None:
    eks = cloud.eks()
    for scaling, message in (
        ({"desiredSize": 3}, "desiredSize can't be greater than maxSize"),
        ({"desiredSize": 0}, "Minimum capacity 1 can't be greater than desired size 0"),
        ({"minSize": 3, "maxSize": 2}, "minSize can't be greater than maxSize"),
    ):
        with pytest.raises(ClientError) as refused:
            eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=GROUP, scalingConfig=scaling)
        error = refused.value.response["Error"]
        assert (error["Code"], error["Message"]) == ("InvalidParameterException", message), scaling
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert cloud.sizes() == {"minSize": 1, "maxSize": 2, "desiredSize": 1}
    with pytest.raises(ClientError) as refused:
        eks.create_nodegroup(
            clusterName=CLUSTER,
            nodegroupName="too-small",
            nodeRole="arn:aws:iam::123456789012:role/scaling-eks",
            subnets=["subnet-1"],
            scalingConfig={"minSize": 2, "maxSize": 3, "desiredSize": 1},
        )
    assert refused.value.response["Error"]["Message"] == "minSize can't be greater than desiredSize"


def test_an_unschedulable_pod_raises_the_node_group_and_lands_on_the_new_node(cloud: Cloud) -> None:
    [first] = cloud.ready_nodes()
    cloud.apply(sleeper("big", 2, "1500m"))

    def placed() -> bool:
        pods = cloud.pods("big")
        return len(pods) == 2 and all(condition(p, "Ready").get("status") == "True" for p in pods)

    assert poll(placed, within=STEP_SECONDS), cloud.kubectl("get", "pods", "-A", "-o", "wide") + cloud.logs()
    assert cloud.sizes()["desiredSize"] == 2
    nodes = {p["spec"]["nodeName"] for p in cloud.pods("big")}
    assert len(nodes) == 2, nodes
    assert first in nodes, nodes
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in cloud.nodes()}
    assert zones <= set(SUBNETS.values()), zones
    assert len(zones) == 2, zones  # round robin over the subnets' zones
    triggered = cloud.events("TriggeredScaleUp")
    assert triggered, "no TriggeredScaleUp event"
    assert "workers 1->2 (max: 2)" in triggered[0]["message"], triggered


def test_a_pod_no_node_of_the_group_within_its_max_can_take_waits_unschedulable(cloud: Cloud) -> None:
    cloud.kubectl("scale", "-n", "default", "deployment/big", "--replicas=3")
    assert poll(lambda: cloud.events("NotTriggerScaleUp"), within=STEP_SECONDS), cloud.logs()
    time.sleep(3 * TIMES.scan_interval_seconds)
    assert cloud.sizes()["desiredSize"] == 2
    assert len(cloud.nodes()) == 2
    pending = [p for p in cloud.pods("big") if not p["spec"].get("nodeName")]
    assert len(pending) == 1
    assert condition(pending[0], "PodScheduled").get("reason") == "Unschedulable"


def _second_node(cloud: Cloud) -> str:
    """The node the autoscaler added (the one its own pod does not run on)."""
    pods = get_json(
        cloud.kubectl, "pods", "-n", "kube-system", "-l", "app.kubernetes.io/name=cluster-autoscaler"
    )
    home = pods["items"][0]["spec"]["nodeName"]
    [other] = [n for n in cloud.ready_nodes() if n != home]
    return other


def _kept_for(cloud: Cloud, seconds: float) -> bool:
    """Whether the node group keeps both nodes for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(cloud.nodes()) != 2 or cloud.sizes()["desiredSize"] != 2:
            return False
        time.sleep(0.5)
    return True


def test_a_pod_annotated_not_safe_to_evict_keeps_its_node(cloud: Cloud) -> None:
    cloud.kubectl("delete", "-n", "default", "deployment/big", "--wait=true")
    added = _second_node(cloud)
    cloud.apply(sleeper("keeper", 1, "50m", {ca.SAFE_TO_EVICT: "false"}))
    assert poll(lambda: [p for p in cloud.pods("keeper") if p["spec"].get("nodeName") == added], within=60), (
        "the keeper pod is not on the added node"
    )
    held = TIMES.scale_down_delay_after_add_seconds + 3 * TIMES.scale_down_unneeded_seconds
    assert _kept_for(cloud, held), cloud.logs()


def test_a_disruption_budget_that_allows_nothing_keeps_the_node_one_that_allows_it_lets_it_go(
    cloud: Cloud,
) -> None:
    added = _second_node(cloud)
    cloud.apply(budget("guarded", minAvailable=1), sleeper("guarded", 1, "50m"))
    assert poll(lambda: [p for p in cloud.pods("guarded") if p["spec"].get("nodeName") == added], within=60)
    cloud.kubectl("delete", "-n", "default", "deployment/keeper", "--wait=true")
    assert _kept_for(cloud, 3 * TIMES.scale_down_unneeded_seconds), cloud.logs()

    cloud.kubectl("delete", "-n", "default", "pdb/guarded")
    cloud.apply(budget("guarded", maxUnavailable=1))
    assert poll(lambda: len(cloud.nodes()) == 1, within=STEP_SECONDS), cloud.logs() + cloud.binding.log_tail()
    assert cloud.sizes() == {"minSize": 1, "maxSize": 2, "desiredSize": 1}
    assert added not in cloud.ready_nodes()

    def moved() -> bool:
        pods = cloud.pods("guarded")
        return len(pods) == 1 and condition(pods[0], "Ready").get("status") == "True"

    assert poll(moved, within=60)
    assert [e for e in cloud.events("ScaleDown") if "removed" in e["message"]]


def test_never_below_min(cloud: Cloud) -> None:
    time.sleep(TIMES.scale_down_delay_after_add_seconds + 2 * TIMES.scale_down_unneeded_seconds)
    assert cloud.sizes()["desiredSize"] == 1
    assert len(cloud.ready_nodes()) == 1


# ---------------------------------------------------------------------------------------------- the rules


def _pod(name: str, cpu: str = "100m", **extra: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": extra.pop("namespace", "default"),
            "labels": extra.pop("labels", {"app": name}),
            "annotations": extra.pop("annotations", {}),
            "ownerReferences": extra.pop(
                "owners", [{"kind": "ReplicaSet", "name": "rs", "controller": True}]
            ),
        },
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
    }
    pod["spec"].update(extra)
    return pod


def test_flags_are_the_real_ones_and_others_are_refused_in_one_line() -> None:
    config = ModelConfig(images={}, cluster_name="c", autoscaling=TIMES)
    args = cluster_autoscaler_objects(config)[-1]["spec"]["template"]["spec"]["containers"][0]["args"]
    options = ca.parse_options(args)
    assert options.discovery == (
        ("k8s.io/cluster-autoscaler/enabled", None),
        ("k8s.io/cluster-autoscaler/c", None),
    )
    assert (options.scan_interval, options.scale_down_unneeded, options.scale_down_delay_after_add) == (
        1,
        4,
        6,
    )
    assert options.scale_down_delay_after_failure == 5
    assert options.scale_down_utilization_threshold == 0.5
    assert not options.skip_nodes_with_local_storage
    assert options.skip_nodes_with_system_pods
    assert ca.go_duration("10m0s") == 600
    assert ca.go_duration("1h1m1.5s") == 3661.5
    with pytest.raises(ca.ConfigError, match="--max-node-provision-time is not implemented"):
        ca.parse_options([*args, "--max-node-provision-time=15m"])
    with pytest.raises(ca.ConfigError, match="implements random, most-pods, least-waste only"):
        ca.parse_options([*args, "--expander=priority"])


def test_a_pod_moves_only_as_upstream_allows() -> None:
    options = ca.parse_options(["--node-group-auto-discovery=asg:tag=k"])
    assert ca.blocker(_pod("ok"), [], options) is None
    assert "bare pod" in str(ca.blocker(_pod("bare", owners=[]), [], options))
    unsafe = _pod("unsafe", annotations={ca.SAFE_TO_EVICT: "false"})
    assert "safe-to-evict" in str(ca.blocker(unsafe, [], options))
    assert (
        ca.blocker(_pod("bare-but-safe", owners=[], annotations={ca.SAFE_TO_EVICT: "true"}), [], options)
        is None
    )
    system = _pod("dns", namespace="kube-system")
    assert "kube-system" in str(ca.blocker(system, [], options))
    system_budget = {
        "metadata": {"name": "dns", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "dns"}}},
    }
    assert ca.blocker(system, [system_budget], options) is None
    scratch = _pod("scratch", volumes=[{"name": "tmp", "emptyDir": {}}])
    assert "local storage" in str(ca.blocker(scratch, [], options))
    relaxed = ca.parse_options(
        ["--node-group-auto-discovery=asg:tag=k", "--skip-nodes-with-local-storage=false"]
    )
    assert ca.blocker(scratch, [], relaxed) is None
    guarded = {
        "metadata": {"name": "ok", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "ok"}}},
        "status": {"disruptionsAllowed": 1},
    }
    assert ca.budgets_allow([_pod("ok")], [guarded]) is None
    assert "allows 1 disruption(s), the node has 2" in str(
        ca.budgets_allow([_pod("ok"), _pod("ok")], [guarded])
    )


def test_scale_up_packs_pods_first_fit_within_the_max_and_the_expanders_choose() -> None:
    group = ca.Group("c", "g", "t3.medium", 1, 3, 1, {}, [])
    plan = ca.plan_scale_up(group, [_pod(f"p{i}", "900m") for i in range(6)])
    assert plan is not None
    assert plan.nodes == 2
    assert len(plan.pods) == 4
    assert ca.plan_scale_up(group, [_pod("huge", "3")]) is None  # fits no t3.medium
    assert ca.plan_scale_up(ca.Group("c", "full", "t3.medium", 1, 2, 2, {}, []), [_pod("p")]) is None
    tainted = ca.Group(
        "c", "t", "t3.medium", 0, 3, 0, {}, [{"key": "gpu", "value": "x", "effect": "NO_SCHEDULE"}]
    )
    assert ca.plan_scale_up(tainted, [_pod("p")]) is None
    large = ca.Group("c", "large", "t3.large", 0, 3, 0, {}, [])
    small, big = ca.plan_scale_up(group, [_pod("p", "500m")]), ca.plan_scale_up(large, [_pod("p", "500m")])
    assert small is not None
    assert big is not None
    assert ca.expand([small, big], "least-waste", random.Random(1)).group.name == "g"
    twin = ca.Group("c", "twin", "t3.medium", 1, 3, 1, {}, [])
    wide = ca.ScaleUp(group, 2, [], 0.0)
    assert ca.balance(wide, [group, twin, large]) == {"c/g": 2, "c/twin": 2}


def test_utilization_is_requests_over_allocatable_the_larger_of_cpu_and_memory() -> None:
    node = {"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "17"}}}
    assert ca.utilization(node, [_pod("a", "500m"), _pod("b", "400m")]) == pytest.approx(0.45)
    heavy = _pod("m")
    heavy["spec"]["containers"][0]["resources"]["requests"]["memory"] = "3Gi"
    assert ca.utilization(node, [heavy]) == pytest.approx(0.75)


def test_the_node_group_loses_the_node_the_autoscaler_drained_and_refills_the_lowest_slot() -> None:
    """What the EKS binding does with the desired size (`sim.eks.nodes.plan_nodes`): the node marked for
    deletion goes rather than the newest, and a later new node takes its slot (its subnet's zone)."""
    subnets = tuple(Subnet(f"subnet-{i}", cidr, zone) for i, (cidr, zone) in enumerate(SUBNETS.items()))

    def group(desired: int) -> NodeGroup:
        return NodeGroup(CLUSTER, GROUP, "t3.medium", "ON_DEMAND", desired, subnets)

    three = plan_nodes("us-east-1", [group(3)]).nodes
    first = three[GROUP, 0].name
    two = plan_nodes("us-east-1", [group(2)], three, leaving={first}).nodes
    assert sorted(index for _, index in two) == [1, 2]
    three_again = plan_nodes("us-east-1", [group(3)], two).nodes
    assert sorted(index for _, index in three_again) == [0, 1, 2]
    assert three_again[GROUP, 0].zone == "us-east-1a"
    assert plan_nodes("us-east-1", [group(2)], three).nodes.keys() == {(GROUP, 0), (GROUP, 1)}
