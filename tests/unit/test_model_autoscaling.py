"""The autoscaling the model renders: the cluster autoscaler (its RBAC as upstream's AWS manifest gives it,
its IRSA role, its flags from the settings with upstream's defaults and the stage's clock), the HPAs' CPU
target and scale-down window, and the deploy's settings behind them."""

from __future__ import annotations

from typing import Any

import pytest

from infra.desired import autoscaling
from infra.model import ModelError, images, render
from infra.model.cluster_autoscaler import NAME, discovery_tags
from infra.model.config import Autoscaling
from infra.settings import Settings
from tests.unit.model_configs import AWS, LOCAL, ROLES, find, render_with
from tests.unit.test_model_platform import NODE_PODS, SYSTEM_PODS

DATA: dict[str, Any] = {"stage": "aws", "account_id": "123456789012"}


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = find(objects, "Deployment", NAME)
    assert deployment["metadata"]["namespace"] == "kube-system"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_autoscaler_runs_the_pinned_1_30_release_with_upstreams_defaults_as_flags() -> None:
    objects = render(AWS)
    container = _container(objects)
    assert container["image"] == images.CLUSTER_AUTOSCALER
    assert container["image"].startswith("registry.k8s.io/autoscaling/cluster-autoscaler:v1.30.")
    assert "@sha256:" in container["image"]
    args = container["args"]
    assert (
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/shopstack"
        in args
    )
    for flag in (
        "--cloud-provider=aws",
        "--scan-interval=10s",
        "--scale-down-unneeded-time=600s",
        "--scale-down-delay-after-add=600s",
        "--scale-down-delay-after-failure=180s",
        "--scale-down-utilization-threshold=0.5",
        "--expander=random",
        "--balance-similar-node-groups=false",
    ):
        assert flag in args, flag
    assert {"name": "AWS_REGION", "value": AWS.region} in container["env"]
    account = find(objects, "ServiceAccount", NAME)
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLES[NAME]


def test_its_rbac_is_upstreams_for_the_aws_provider() -> None:
    objects = render(AWS)
    rules = find(objects, "ClusterRole", NAME)["rules"]
    granted = {
        (group, resource, verb)
        for r in rules
        for group in r["apiGroups"]
        for resource in r["resources"]
        for verb in r["verbs"]
    }
    for wanted in (
        ("", "pods/eviction", "create"),
        ("", "nodes", "update"),
        ("policy", "poddisruptionbudgets", "list"),
        ("coordination.k8s.io", "leases", "create"),
    ):
        assert wanted in granted, wanted
    assert ("", "secrets", "get") not in granted
    binding = find(objects, "ClusterRoleBinding", NAME)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "kube-system"}]
    role = find(objects, "Role", NAME)
    assert role["metadata"]["namespace"] == "kube-system"


def test_the_aws_stage_needs_its_role_and_it_can_be_turned_off() -> None:
    roles = {k: v for k, v in ROLES.items() if k != NAME}
    with pytest.raises(ModelError, match="cluster autoscaler's IRSA role"):
        render_with(AWS, role_arns=roles)
    off = render_with(LOCAL, autoscaling=Autoscaling(cluster_autoscaler=False))
    assert not [o for o in off if o["metadata"]["name"] == NAME]
    assert _container(render(LOCAL))["image"] == images.CLUSTER_AUTOSCALER  # the local stage runs it too


def test_hpas_take_the_cpu_target_and_scale_down_window_of_the_settings() -> None:
    tuned = render_with(
        AWS, autoscaling=Autoscaling(hpa_cpu_target_percent=30, hpa_scale_down_stabilization_seconds=30)
    )
    hpa = find(tuned, "HorizontalPodAutoscaler", "frontend-proxy")
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 30}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30
    default = find(render(AWS), "HorizontalPodAutoscaler", "frontend-proxy")
    assert default["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_settings_give_upstreams_defaults_in_aws_and_a_tenth_of_the_times_on_an_emulator() -> None:
    aws = autoscaling(Settings.parse(DATA))
    assert (aws.scan_interval_seconds, aws.scale_down_unneeded_seconds) == (10, 600)
    assert (aws.scale_down_delay_after_add_seconds, aws.scale_down_delay_after_failure_seconds) == (600, 180)
    assert (aws.hpa_cpu_target_percent, aws.hpa_scale_down_stabilization_seconds) == (70, 300)
    assert aws.cluster_autoscaler
    local = autoscaling(Settings.parse({**DATA, "stage": "local"}))
    assert (local.scan_interval_seconds, local.scale_down_unneeded_seconds) == (1, 60)
    assert (local.scale_down_delay_after_add_seconds, local.hpa_scale_down_stabilization_seconds) == (60, 30)
    assert local.hpa_cpu_target_percent == 30
    assert not autoscaling(Settings.parse({**DATA, "stage": "kind"})).cluster_autoscaler
    shortened = Settings.parse(
        {**DATA, "autoscaling_time_scale": 0.01, "cluster_autoscaler": {"expander": "least-waste"}}
    )
    assert autoscaling(shortened).scale_down_unneeded_seconds == 6
    assert autoscaling(shortened).expander == "least-waste"
    with pytest.raises(Exception, match="expander"):
        Settings.parse({**DATA, "cluster_autoscaler": {"expander": "priority"}})


def test_the_node_group_carries_the_auto_discovery_tags() -> None:
    assert discovery_tags("shopstack") == {
        "k8s.io/cluster-autoscaler/enabled": "true",
        "k8s.io/cluster-autoscaler/shopstack": "owned",
    }


def test_the_shop_at_rest_fits_the_desired_nodes_and_at_its_hpas_maximum_needs_more_within_max() -> None:
    """At rest the shop fits the node group's desired size of t3.medium (by the VPC CNI's pod limit, the
    tightest); at every HPA's maximum it does not, but it fits the node group's max: the nodes the cluster
    autoscaler adds."""
    objects = render(AWS)
    rest = sum(o["spec"]["replicas"] for o in objects if o["kind"] in ("Deployment", "StatefulSet"))
    extra = sum(
        o["spec"]["maxReplicas"] - o["spec"]["minReplicas"]
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    )
    group = Settings.parse(DATA).node_group
    assert rest + SYSTEM_PODS <= group.desired_size * NODE_PODS
    assert rest + extra + SYSTEM_PODS > group.desired_size * NODE_PODS
    assert rest + extra + SYSTEM_PODS <= group.max_size * NODE_PODS
