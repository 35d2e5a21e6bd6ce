"""Blue-green behind the local ALB, end to end: a real moto server, a real `python -m sim.cluster` cluster
whose ALB controller reads target health from the real data plane process, and the real kubectl.

Two colours of a payment Deployment, each behind its own Service, behind one `alb` Ingress whose
weighted forward action (`actions.web`, backend port `use-annotation`) sends blue 100 and green 0, in a
namespace labelled for pod readiness gates. Each colour is its own target group, health-checked by the
annotations and with the Ingress's deregistration delay; each pod gets its target group's readiness gate
and is Ready only once its target is healthy (green's health check first points at a path that answers
404); requests land by weight and follow a switch of weights; a malformed action annotation is a Warning
event and changes nothing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest

from containers.nodestore import ImageStore
from sim.alb.model import RESOURCE_TAG
from tests.cloud.test_alb import DataPlaneProcess, access_log_lines, running_dataplane
from tests.support.cluster import Cluster, condition, get_json, payment_container, poll, start_cluster

ADDRESSES = "127.132.0.0/16"
NAMESPACE = "shop"
P = "alb.ingress.kubernetes.io/"
GATE_PREFIX = "target-health.elbv2.k8s.aws/"


@pytest.fixture(scope="module")
def elb(aws_env: dict[str, str]) -> Any:
    return boto3.client(
        "elbv2",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=aws_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def dataplane(
    tmp_path_factory: pytest.TempPathFactory, aws_env: dict[str, str]
) -> Iterator[DataPlaneProcess]:
    with running_dataplane(
        tmp_path_factory.mktemp("alb-bg-dataplane"), aws_env["AWS_ENDPOINT_URL"]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    image_store: ImageStore,
    aws_env: dict[str, str],
    dataplane: DataPlaneProcess,
) -> Iterator[Cluster]:
    extra = ["--aws-endpoint", aws_env["AWS_ENDPOINT_URL"], "--cluster-name", "bluegreen"]
    extra += ["--alb-admin-url", dataplane.admin]
    running = start_cluster(tmp_path_factory.mktemp("alb-bg"), image_store, ADDRESSES, extra_args=extra)
    try:
        yield running
    finally:
        running.process.stop(grace=15)


def action(blue: Any, green: Any) -> str:
    groups = [
        {"serviceName": "web-blue", "servicePort": "80", "weight": blue},
        {"serviceName": "web-green", "servicePort": "80", "weight": green},
    ]
    return json.dumps({"type": "forward", "forwardConfig": {"targetGroups": groups}})


def manifests(image: str) -> list[dict[str, Any]]:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}},
    }
    out: list[dict[str, Any]] = [namespace]
    for colour in ("blue", "green"):
        labels = {"app": "web", "colour": colour}
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"web-{colour}", "namespace": NAMESPACE},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "terminationGracePeriodSeconds": 5,
                            "containers": [payment_container(image)],
                        },
                    },
                },
            }
        )
        # green's target is checked on a path that answers 404 until the test points it at /healthz
        notes = {P + "healthcheck-path": "/nowhere"} if colour == "green" else {}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"web-{colour}", "namespace": NAMESPACE, "annotations": notes},
                "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            }
        )
    backend = {"service": {"name": "web", "port": {"name": "use-annotation"}}}
    out.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "web",
                "namespace": NAMESPACE,
                "annotations": {
                    P + "target-type": "ip",
                    P + "healthcheck-path": "/healthz",
                    P + "healthcheck-interval-seconds": "5",
                    P + "target-group-attributes": "deregistration_delay.timeout_seconds=20",
                    P + "actions.web": action(100, 0),
                },
            },
            "spec": {
                "ingressClassName": "alb",
                "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
            },
        }
    )
    return out


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, payment_image: Any) -> Cluster:
    """Everything applied: the Ingress first, so that the colours' pods are created behind it."""
    objects = manifests(payment_image.reference)
    for obj in sorted(
        objects, key=lambda o: ["Namespace", "Service", "Ingress", "Deployment"].index(o["kind"])
    ):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/web-blue", "--timeout=90s")
    return cluster


def pod(cluster: Cluster, colour: str) -> dict[str, Any]:
    items = get_json(cluster.kubectl, "-n", NAMESPACE, "pods", "-l", f"colour={colour}")["items"]
    (found,) = [p for p in items if not p["metadata"].get("deletionTimestamp")]
    return dict(found)


def target_groups(elb: Any) -> dict[str, dict[str, Any]]:
    """This module's target groups by colour."""
    groups = elb.describe_target_groups()["TargetGroups"]
    tags = elb.describe_tags(ResourceArns=[g["TargetGroupArn"] for g in groups])["TagDescriptions"]
    resources = {t["ResourceArn"]: {x["Key"]: x["Value"] for x in t["Tags"]}.get(RESOURCE_TAG) for t in tags}
    return {
        colour: next(g for g in groups if resources[g["TargetGroupArn"]] == f"{NAMESPACE}/web-{colour}:80")
        for colour in ("blue", "green")
    }


def registered(elb: Any, group: dict[str, Any]) -> set[str]:
    health = elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    return {d["Target"]["Id"] for d in health}


def rule_weights(elb: Any) -> dict[str, int]:
    """The weights of the Ingress's rule in the emulator, by colour."""
    arns = {g["TargetGroupArn"]: colour for colour, g in target_groups(elb).items()}
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            for rule in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                groups = (rule["Actions"][0].get("ForwardConfig") or {}).get("TargetGroups") or []
                if groups and groups[0]["TargetGroupArn"] in arns:
                    return {arns[g["TargetGroupArn"]]: g["Weight"] for g in groups}
    return {}


def set_weights(cluster: Cluster, blue: Any, green: Any) -> None:
    patch = {"metadata": {"annotations": {P + "actions.web": action(blue, green)}}}
    cluster.kubectl("-n", NAMESPACE, "patch", "ingress", "web", "--type=merge", "-p", json.dumps(patch))


def check_green_on(cluster: Cluster, path: str) -> None:
    patch = {"metadata": {"annotations": {P + "healthcheck-path": path}}}
    cluster.kubectl("-n", NAMESPACE, "patch", "service", "web-green", "--type=merge", "-p", json.dumps(patch))


def green_ready(cluster: Cluster) -> bool:
    """Green's health check pointed at /healthz, and its pod Ready."""
    check_green_on(cluster, "/healthz")
    return bool(poll(lambda: condition(pod(cluster, "green"), "Ready").get("status") == "True", within=40))


def landed(dataplane: DataPlaneProcess, cluster: Cluster, count: int) -> list[str]:
    """The colours `count` requests through the data plane land on, from its access log."""
    ips = {pod(cluster, c)["status"]["podIP"]: c for c in ("blue", "green")}
    before = len(access_log_lines(dataplane))
    with httpx.Client(timeout=10, trust_env=False) as client:
        statuses = [client.get(f"{dataplane.url}/healthz").status_code for _ in range(count)]
    assert statuses == [200] * count
    assert poll(lambda: len(access_log_lines(dataplane)) >= before + count)
    return [ips[line[4].split(":")[0]] for line in access_log_lines(dataplane)[before : before + count]]


def test_health_checks_and_attributes_come_from_the_annotations(deployed: Cluster, elb: Any) -> None:
    groups = poll(lambda: target_groups(elb) if len(target_groups(elb)) == 2 else {}, within=30)
    assert {c: g["HealthCheckPath"] for c, g in groups.items()} == {"blue": "/healthz", "green": "/nowhere"}
    for group in groups.values():
        settings = ("HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount")
        assert [group[k] for k in settings] == [5, 4, 2]  # the interval annotated, the rest the defaults
        assert (group["UnhealthyThresholdCount"], group["Matcher"]["HttpCode"]) == (2, "200")
        attributes = elb.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])[
            "Attributes"
        ]
        assert {"Key": "deregistration_delay.timeout_seconds", "Value": "20"} in attributes


def test_a_pod_is_ready_only_once_its_target_is_healthy(
    deployed: Cluster, elb: Any, dataplane: DataPlaneProcess
) -> None:
    groups = target_groups(elb)
    blue, green = pod(deployed, "blue"), pod(deployed, "green")
    for colour, found in (("blue", blue), ("green", green)):
        gates = [g["conditionType"] for g in found["spec"].get("readinessGates") or []]
        assert gates == [GATE_PREFIX + groups[colour]["TargetGroupName"]]
    assert condition(blue, GATE_PREFIX + groups["blue"]["TargetGroupName"])["status"] == "True"

    # green's target fails its health check: registered, measured unhealthy, and the pod held back
    check_green_on(deployed, "/nowhere")
    gate = GATE_PREFIX + groups["green"]["TargetGroupName"]

    def held_back() -> dict[str, Any]:
        found = pod(deployed, "green")
        return found if condition(found, gate).get("reason") == "Target.ResponseCodeMismatch" else {}

    green = poll(held_back, within=40)
    assert green, pod(deployed, "green")["status"]
    assert condition(green, gate)["status"] == "False"
    assert condition(green, gate)["message"] == "Health checks failed with these codes: [404]"
    assert condition(green, "ContainersReady")["status"] == "True"
    assert (condition(green, "Ready")["status"], condition(green, "Ready")["reason"]) == (
        "False",
        "ReadinessGatesNotReady",
    )
    assert registered(elb, groups["green"]) == {green["status"]["podIP"]}
    deployment = get_json(deployed.kubectl, "-n", NAMESPACE, "deployment", "web-green")
    assert deployment["status"].get("readyReplicas", 0) == 0

    assert green_ready(deployed), pod(deployed, "green")["status"]
    green = pod(deployed, "green")
    assert condition(green, gate)["status"] == "True"
    assert "reason" not in condition(green, gate)  # ELBv2 gives a healthy target no reason
    assert poll(
        lambda: (
            get_json(deployed.kubectl, "-n", NAMESPACE, "deployment", "web-green")["status"].get(
                "readyReplicas"
            )
            == 1
        )
    )


def test_requests_land_by_weight_and_follow_a_switch(
    deployed: Cluster, elb: Any, dataplane: DataPlaneProcess
) -> None:
    assert green_ready(deployed)
    set_weights(deployed, 100, 0)
    assert poll(lambda: rule_weights(elb) == {"blue": 100, "green": 0})
    assert poll(lambda: set(landed(dataplane, deployed, 4)) == {"blue"})  # the data plane has read them
    assert landed(dataplane, deployed, 20) == ["blue"] * 20  # weight 0: not one request

    set_weights(deployed, 25, 75)
    assert poll(lambda: rule_weights(elb) == {"blue": 25, "green": 75})
    assert poll(lambda: "green" in landed(dataplane, deployed, 4))
    assert Counter(landed(dataplane, deployed, 40)) == {"blue": 10, "green": 30}

    set_weights(deployed, 0, 100)
    assert poll(lambda: set(landed(dataplane, deployed, 4)) == {"green"})
    assert landed(dataplane, deployed, 20) == ["green"] * 20


def test_a_malformed_action_is_a_warning_and_the_last_good_weights_stay(
    deployed: Cluster, elb: Any, dataplane: DataPlaneProcess
) -> None:
    set_weights(deployed, 100, 0)
    assert poll(lambda: rule_weights(elb) == {"blue": 100, "green": 0})
    assert poll(lambda: set(landed(dataplane, deployed, 4)) == {"blue"})  # the data plane has read them
    set_weights(deployed, "lots", 0)

    def warnings() -> list[dict[str, Any]]:
        events = get_json(deployed.kubectl, "-n", NAMESPACE, "events")["items"]
        return [e for e in events if e["type"] == "Warning" and e["involvedObject"]["name"] == "web"]

    (warning,) = poll(warnings, within=20)
    assert warning["reason"] == "FailedBuildModel"
    assert warning["message"].startswith(f"{P}actions.web: ")
    assert rule_weights(elb) == {"blue": 100, "green": 0}
    assert set(landed(dataplane, deployed, 10)) == {"blue"}
    set_weights(deployed, 100, 0)
