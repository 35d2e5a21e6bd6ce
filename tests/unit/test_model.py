"""The declarative model: what every rendered object must hold, in both stages, and how the inputs
(images, flags, replicas, config) change what is rendered."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest

from infra.model import (
    PART_OF_LABEL,
    PRUNE_LABEL,
    PRUNE_VALUE,
    SERVICE_NAMES,
    SERVICES,
    ModelError,
    render,
)
from infra.model.common import CHECKSUM_ANNOTATION, NAME_LABEL
from kube.apply_order import apply_rank
from sim.kubelet.spec import expand
from tests.unit.model_configs import AWS, LOCAL, STAGES, find, live_deployment, render_with

CLUSTER_SCOPED = {
    "Namespace",
    "IngressClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
}
WORKLOADS = ("Deployment", "StatefulSet")


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objects if o["kind"] in WORKLOADS]


@pytest.fixture(params=sorted(STAGES))
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(STAGES[request.param])


def test_every_object_passes_kubernetes_validate_strict(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_every_object_is_labelled_for_prune_and_namespaced(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        meta = obj["metadata"]
        assert meta["labels"][PRUNE_LABEL] == PRUNE_VALUE, meta["name"]
        assert meta["labels"][PART_OF_LABEL] == "shopstack"
        assert meta["labels"][NAME_LABEL]
        assert ("namespace" in meta) == (obj["kind"] not in CLUSTER_SCOPED), f"{obj['kind']} {meta['name']}"
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "an object is rendered twice"


def references(obj: dict[str, Any], crd_kinds: set[str]) -> set[tuple[str, str]]:
    """(kind, name) of every object `obj` needs to exist before it."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    needs = {("Namespace", meta["namespace"])} if "namespace" in meta else set()
    if obj["kind"] in crd_kinds:
        needs.add(("CustomResourceDefinition", obj["kind"]))
    template = (spec.get("template") or {}).get("spec") or {}
    if template.get("serviceAccountName"):
        needs.add(("ServiceAccount", template["serviceAccountName"]))
    for volume in template.get("volumes") or []:
        if "configMap" in volume:
            needs.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            needs.add(("Secret", volume["secret"]["secretName"]))
    for container in template.get("containers") or []:
        for source in container.get("envFrom") or []:
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    needs.add((kind, source[key]["name"]))
    for claim in spec.get("volumeClaimTemplates") or []:
        if claim["spec"].get("storageClassName"):
            needs.add(("StorageClass", claim["spec"]["storageClassName"]))
    if "roleRef" in obj:
        needs.add((obj["roleRef"]["kind"], obj["roleRef"]["name"]))
        needs |= {
            ("ServiceAccount", s["name"]) for s in obj.get("subjects") or [] if s["kind"] == "ServiceAccount"
        }
    if obj["kind"] == "HorizontalPodAutoscaler":
        needs.add((spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"]))
    if obj["kind"] == "Ingress":
        needs.add(("IngressClass", spec["ingressClassName"]))
        for rule in spec.get("rules") or []:
            for path in rule["http"]["paths"]:
                needs.add(("Service", path["backend"]["service"]["name"]))
    return needs


@pytest.mark.parametrize("stage", ["local", "aws"])
def test_every_object_is_applied_after_what_it_refers_to(stage: str) -> None:
    """The rendered order is the deploy's apply order (`kube.apply_order`): in AWS the Kafka StorageClass
    comes before the StatefulSet whose claims name it, the load balancer controller's CRDs before it."""
    rendered = render(STAGES[stage])
    assert rendered == sorted(rendered, key=apply_rank)
    crd_kinds = {o["spec"]["names"]["kind"] for o in rendered if o["kind"] == "CustomResourceDefinition"}
    seen: set[tuple[str, str]] = set()
    checked = 0
    for obj in rendered:
        declared = {(o["kind"], o["metadata"]["name"]) for o in rendered}
        missing = {need for need in references(obj, crd_kinds) if need in declared} - seen
        assert not missing, f"{obj['kind']} {obj['metadata']['name']} comes before {sorted(missing)}"
        checked += len(references(obj, crd_kinds))
        seen.add((obj["kind"], obj["metadata"]["name"]))
    assert checked > len(rendered)
    if stage == "aws":
        kinds = [o["kind"] for o in rendered]
        assert kinds.index("StorageClass") < kinds.index("StatefulSet")


def test_every_container_runs_restricted(objects: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            # Kafka's launcher writes its config into the image (skipped for checkov with that reason)
            assert security["readOnlyRootFilesystem"] is (name != "kafka"), name


def test_shop_pods_run_as_the_image_user_with_tmp_and_flags_mounted() -> None:
    objects = render(LOCAL)
    for name in SERVICE_NAMES:
        spec = live_deployment(objects, name)["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert (container["securityContext"]["runAsUser"], container["securityContext"]["runAsGroup"]) == (
            10001,
            10001,
        )
        assert spec["automountServiceAccountToken"] is False
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[mounts["/tmp"]] == {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}
        assert volumes[mounts["/etc/shopstack/flags"]]["configMap"] == {"name": "flags"}
        config = find(objects, "ConfigMap", f"{name}-blue-config")["data"]
        assert config["FLAGS_FILE"] == "/etc/shopstack/flags/flags.json"
        assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
        assert spec["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "ScheduleAnyway"


def test_shop_telemetry_names_the_pod_and_node_that_made_it() -> None:
    for name in SERVICE_NAMES:
        container = live_deployment(render(LOCAL), name)["spec"]["template"]["spec"]["containers"][0]
        env = {item["name"]: item for item in container["env"]}
        assert env["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["K8S_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
        resolved = expand(
            env["OTEL_RESOURCE_ATTRIBUTES"]["value"], {"K8S_POD_NAME": "pod-a", "K8S_NODE_NAME": "node-b"}
        )
        attributes = dict(pair.split("=", 1) for pair in resolved.split(","))
        assert attributes["k8s.pod.name"] == "pod-a"
        assert attributes["k8s.node.name"] == "node-b"
        assert attributes["deployment.environment"] == "local"


def test_services_that_take_traffic_keep_serving_a_while_after_they_are_told_to_stop() -> None:
    objects = render(LOCAL)
    for row in SERVICES:
        spec = live_deployment(objects, row.name)["spec"]["template"]["spec"]
        lifecycle = spec["containers"][0].get("lifecycle")
        config = find(objects, "ConfigMap", f"{row.name}-blue-config")["data"]
        if not row.callers:
            assert lifecycle is None, f"{row.name} takes no traffic and need not wait"
            continue
        assert lifecycle["preStop"] == {"httpGet": {"path": "/drain", "port": "http"}}, row.name
        drain = int(config["DRAIN_SECONDS"])
        assert 5 <= drain < spec["terminationGracePeriodSeconds"], row.name
        if row.name == "frontend-proxy":  # the ALB drains it for the deregistration delay
            assert drain > LOCAL.deregistration_delay_seconds


def test_every_workload_has_probes_requests_and_limits(objects: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(objects):
        assert spec["terminationGracePeriodSeconds"] > 0, name
        for container in spec["containers"]:
            assert container["readinessProbe"], name
            assert container["livenessProbe"], name
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, name


def test_shop_probes_are_readyz_and_healthz_on_8080() -> None:
    objects = render(AWS)
    for name in SERVICE_NAMES:
        container = live_deployment(objects, name)["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        service = find(objects, "Service", name)["spec"]
        assert service["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
        annotations = live_deployment(objects, name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "8080"


def test_every_image_is_pinned_by_digest(objects: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(objects):
        for container in spec["containers"]:
            assert "@sha256:" in container["image"], name


def _templates(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] in WORKLOADS}


def test_rendering_twice_gives_the_same_objects() -> None:
    assert render(LOCAL) == render(replace(LOCAL))


def test_a_config_change_rolls_only_the_services_that_read_it() -> None:
    before = _templates(render(LOCAL))
    after = _templates(render_with(LOCAL, carts_table="shopstack-carts-2"))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"cart-blue", "cart-green"}
    old, new = before["cart-blue"]["metadata"]["annotations"], after["cart-blue"]["metadata"]["annotations"]
    assert old[CHECKSUM_ANNOTATION] != new[CHECKSUM_ANNOTATION]
    assert {k: v for k, v in old.items() if k != CHECKSUM_ANNOTATION} == {
        k: v for k, v in new.items() if k != CHECKSUM_ANNOTATION
    }
    assert before["cart-blue"]["spec"] == after["cart-blue"]["spec"]


def test_flags_and_replicas_do_not_roll_any_pod() -> None:
    before = _templates(render(LOCAL))
    after = _templates(render_with(LOCAL, flags={"paymentFailure": 0.5}, replicas={"payment": 3}))
    assert before == after


def test_flags_render_with_the_given_values() -> None:
    objects = render_with(LOCAL, flags={"paymentFailure": 0.25, "cartFailure": True})
    flags = json.loads(find(objects, "ConfigMap", "flags")["data"]["flags.json"])["flags"]
    assert flags["paymentFailure"]["variants"]["on"] == 0.25
    assert flags["paymentFailure"]["defaultVariant"] == "on"
    assert flags["cartFailure"]["defaultVariant"] == "on"
    assert flags["productCatalogFailure"]["defaultVariant"] == "off"


def test_replicas_follow_the_table_and_overrides() -> None:
    objects = render_with(LOCAL, replicas={"frontend": 3, "recommendation": 2})
    for row in SERVICES:
        expected = {"frontend": 3, "recommendation": 2}.get(row.name, row.replicas)
        assert live_deployment(objects, row.name)["spec"]["replicas"] == expected, row.name
        assert find(objects, "Deployment", f"{row.name}-green")["spec"]["replicas"] == 0, "idle colour"
        pdbs = [
            o for o in objects if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == row.name
        ]
        assert len(pdbs) == (1 if expected >= 2 else 0), row.name
        hpas = [
            o for o in objects if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == row.name
        ]
        assert len(hpas) == (1 if row.autoscaled else 0), row.name
        if hpas:
            assert hpas[0]["spec"]["minReplicas"] == expected
            assert hpas[0]["spec"]["maxReplicas"] == 4
    assert find(objects, "PodDisruptionBudget", "recommendation")["spec"]["minAvailable"] == 1


def test_the_aws_stage_has_the_load_balancer_controller_and_the_local_stage_does_not() -> None:
    aws, local = render(AWS), render(LOCAL)
    controller = find(aws, "Deployment", "aws-load-balancer-controller")
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--cluster-name=shopstack" in args
    assert "--aws-vpc-tags=Name=shopstack-vpc" in args
    assert "--ingress-class=alb" in args
    account = find(aws, "ServiceAccount", "aws-load-balancer-controller")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("shopstack-lbc")
    assert not [o for o in local if o["metadata"]["name"] == "aws-load-balancer-controller"]


def test_without_prometheus_nothing_of_it_is_rendered_and_the_rest_still_validates() -> None:
    objects = render_with(LOCAL, prometheus=False)
    assert not [o for o in objects if o["metadata"]["labels"][NAME_LABEL] == "prometheus"]
    assert "allow-prometheus" not in {o["metadata"]["name"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert len(objects) < len(render(LOCAL))
    find(objects, "Deployment", "grafana")
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_irsa_roles_in_aws_and_emulator_credentials_locally() -> None:
    aws, local = render(AWS), render(LOCAL)
    for name in ("cart", "accounting", "checkout"):
        assert "eks.amazonaws.com/role-arn" in find(aws, "ServiceAccount", name)["metadata"]["annotations"]
        assert "AWS_ENDPOINT_URL" not in find(aws, "ConfigMap", f"{name}-blue-config")["data"]
        assert (
            find(local, "ConfigMap", f"{name}-blue-config")["data"]["AWS_ENDPOINT_URL"]
            == "http://127.0.0.1:4566"
        )
        env_from = live_deployment(local, name)["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "aws-emulator-credentials"}} in env_from
    assert not [o for o in aws if o["kind"] == "Secret"]
    payment = live_deployment(local, "payment")["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert payment == [{"configMapRef": {"name": "payment-blue-config"}}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"images": {**LOCAL.images, "shipping": "x@sha256:" + "0" * 64}}, "unknown service 'shipping'"),
        ({"images": {k: v for k, v in LOCAL.images.items() if k != "cart"}}, "no image for service 'cart'"),
        ({"images": {**LOCAL.images, "cart": "shopstack/cart:latest"}}, "'cart' is not pinned by digest"),
        ({"replicas": {"carts": 2}}, "replicas for unknown service 'carts'"),
        ({"replicas": {"cart": 0}}, "replicas of 'cart' must be a whole number"),
        ({"flags": {"paymentFailures": True}}, "unknown flag 'paymentFailures'"),
        ({"role_arns": {"payment": "arn:aws:iam::1:role/p"}}, "unknown service account 'payment'"),
        ({"env": {"carts": {"A": "b"}}}, "env for unknown service 'carts'"),
        ({"env": {"cart": {"A B": "b"}}}, "'A B' is not an environment variable name"),
        ({"strategies": {"cart": "canary"}}, "strategy of 'cart' must be one of blue-green, rolling"),
    ],
)
def test_bad_input_raises_one_clear_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message) as raised:
        render_with(LOCAL, **changes)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vpc_name": ""}, "needs vpc_name"),
        ({"aws_endpoint_url": "http://127.0.0.1:4566"}, "local stage only"),
        ({"role_arns": {}}, r"needs role_arns\['cart'\]"),
    ],
)
def test_the_aws_stage_refuses_incomplete_or_local_input(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        render_with(AWS, **changes)


def test_service_env_lands_in_the_service_config_and_is_released() -> None:
    objects = render_with(LOCAL, env={"cart": {"LOG_LEVEL": "DEBUG"}})
    assert find(objects, "ConfigMap", "cart-blue-config")["data"]["LOG_LEVEL"] == "DEBUG"
    assert find(objects, "ConfigMap", "payment-blue-config")["data"]["LOG_LEVEL"] == "INFO"
    before = live_deployment(render(LOCAL), "cart")["spec"]["template"]["metadata"]["annotations"]
    after = live_deployment(objects, "cart")["spec"]["template"]["metadata"]["annotations"]
    assert before[CHECKSUM_ANNOTATION] != after[CHECKSUM_ANNOTATION]
