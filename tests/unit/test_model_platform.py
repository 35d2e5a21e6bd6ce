"""The platform around the shop and how the services read their config: each service's ConfigMap is a
valid environment for its own `Settings`; the whole shop fits the node group; Prometheus's config and
rules pass `promtool`; the dashboards query the provisioned datasource; Kafka's storage follows the
stage."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.model import SERVICES, render
from infra.model.alerting import alert_names
from kube.quantity import parse_quantity
from sim.standins import cluster_autoscaler
from tests.unit.model_configs import AWS, LOCAL, STAGES, find, render_with

#: a t3.medium's allocatable on EKS (2 vCPU, 4 GiB less kube and system reserves), and the
#: per-node DaemonSets (aws-node, kube-proxy) plus the two CoreDNS replicas of the cluster
NODE_CPU_MILLI = 1930
NODE_MEMORY_MIB = 3380
SYSTEM_CPU_MILLI = 2 * (25 + 100) + 2 * 100
SYSTEM_MEMORY_MIB = 2 * 70 + 2 * 70
#: the VPC CNI's pod limit of a t3.medium (3 ENIs x 5 addresses + 2), less those system pods and the
#: load balancer controller
NODE_PODS = 17
SYSTEM_PODS = 2 * 2 + 2 + 1


@pytest.mark.parametrize("row", SERVICES, ids=lambda row: row.name)
def test_each_service_reads_its_configmap_as_valid_settings(
    row: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = find(render(LOCAL), "ConfigMap", f"{row.name}-blue-config")["data"]
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings_class = importlib.import_module(f"{row.module}.app").Settings
    settings = settings_class.from_env()
    assert settings.port == 8080
    assert str(settings.flags_file) == "/etc/shopstack/flags/flags.json"
    for peer in row.peers:
        assert getattr(settings, f"{peer.replace('-', '_')}_url") == f"http://{peer}:8080"
    assert data["OTEL_SERVICE_NAME"] == row.name
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"


def test_tables_and_kafka_reach_the_services_that_use_them() -> None:
    objects = render_with(AWS, carts_table="carts-x", orders_table="orders-y", checkouts_table="checkouts-z")
    assert find(objects, "ConfigMap", "cart-blue-config")["data"]["CART_TABLE"] == "carts-x"
    assert find(objects, "ConfigMap", "accounting-blue-config")["data"]["ORDERS_TABLE"] == "orders-y"
    assert find(objects, "ConfigMap", "checkout-blue-config")["data"]["CHECKOUTS_TABLE"] == "checkouts-z"
    for row in SERVICES:
        data = find(objects, "ConfigMap", f"{row.name}-blue-config")["data"]
        assert ("KAFKA_BOOTSTRAP_SERVERS" in data) == row.kafka, row.name
        assert data.get("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092") == "kafka:9092"


def _requests(container: dict[str, Any]) -> tuple[float, float]:
    requests = container["resources"]["requests"]
    return float(parse_quantity(requests["cpu"])) * 1000, float(parse_quantity(requests["memory"])) / 2**20


def test_the_whole_shop_with_three_front_replicas_fits_two_t3_medium_nodes() -> None:
    front = {row.name: 3 for row in SERVICES if row.autoscaled}
    objects = render_with(AWS, replicas=front)
    cpu, memory, pods = float(SYSTEM_CPU_MILLI), float(SYSTEM_MEMORY_MIB), SYSTEM_PODS
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            pod_cpu, pod_memory = _requests(container)
            assert pod_cpu <= NODE_CPU_MILLI
            assert pod_memory <= NODE_MEMORY_MIB
            cpu += pod_cpu * obj["spec"]["replicas"]
            memory += pod_memory * obj["spec"]["replicas"]
        pods += obj["spec"]["replicas"]
    assert cpu <= 2 * NODE_CPU_MILLI, f"{cpu:.0f}m of CPU requested"
    assert memory <= 2 * NODE_MEMORY_MIB, f"{memory:.0f}Mi of memory requested"
    # by the VPC CNI's pod limit they do not all fit two nodes: the cluster autoscaler adds what they need
    # within the node group's max (test_model_autoscaling)
    assert pods <= 4 * NODE_PODS, f"{pods} pods"


def _prometheus_files(objects: list[dict[str, Any]], directory: Path) -> Path:
    for key, value in find(objects, "ConfigMap", "prometheus-config")["data"].items():
        (directory / key).write_text(value)
    return directory / "prometheus.yml"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_prometheus_config_and_rules_pass_promtool(stage: str, tmp_path: Path) -> None:
    """Debian's promtool (2.42) has no Kubernetes discovery: the config is checked whole with that one
    discovery swapped for file discovery, so relabelling, globals and the rule files are all checked."""
    config = _prometheus_files(render(STAGES[stage]), tmp_path)
    document = yaml.safe_load(config.read_text())
    for section in [*document["scrape_configs"], *document["alerting"]["alertmanagers"]]:
        if section.pop("kubernetes_sd_configs", None):
            section["file_sd_configs"] = [{"files": ["targets/*.json"]}]
    config.write_text(yaml.safe_dump(document))
    command = ["promtool", "check", "config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_prometheus_discovers_the_namespaces_pods_the_same_way_in_both_stages() -> None:
    def discovery(objects: list[dict[str, Any]]) -> dict[str, Any]:
        document = yaml.safe_load(find(objects, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
        return dict(document["scrape_configs"][0])

    local, aws = discovery(render(LOCAL)), discovery(render(AWS))
    assert local == aws
    assert aws["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["shopstack"]}}]


def test_dashboards_query_the_provisioned_datasource() -> None:
    objects = render(LOCAL)
    provisioning = find(objects, "ConfigMap", "grafana-provisioning")["data"]
    sources = yaml.safe_load(provisioning["datasources.yaml"])["datasources"]
    (source,) = [s for s in sources if s["type"] == "prometheus"]
    assert source["url"] == "http://prometheus:9090"
    boards = find(objects, "ConfigMap", "grafana-dashboards")["data"]
    assert {"shop-overview.json", "orders.json", "synthetic.json", "kubernetes.json"} <= set(boards)
    for text in boards.values():
        board = json.loads(text)
        assert board["panels"]
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == source["uid"]
            assert all(target["expr"] for target in panel["targets"])


def test_kafka_keeps_its_log_on_gp3_in_aws_and_in_an_empty_dir_locally() -> None:
    aws, local = find(render(AWS), "StatefulSet", "kafka"), find(render(LOCAL), "StatefulSet", "kafka")
    (claim,) = aws["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp3"
    assert find(render(AWS), "StorageClass", "gp3")["parameters"]["type"] == "gp3"
    assert "volumeClaimTemplates" not in local["spec"]
    volumes = {v["name"]: v for v in local["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]
    env = {e["name"]: e["value"] for e in local["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert find(render(LOCAL), "Service", "kafka")["spec"]["ports"][0]["port"] == 9092


@pytest.mark.parametrize("config", STAGES.values(), ids=STAGES.keys())
def test_the_cluster_autoscaler_never_moves_the_one_kafka_broker(config: Any) -> None:
    """A scale-down that evicted the broker stopped every publish for seconds (checkouts answered 503)."""
    rendered = render(config)
    template = find(rendered, "StatefulSet", "kafka")["spec"]["template"]
    broker = {
        "metadata": {
            **template["metadata"],
            "name": "kafka-0",
            "namespace": config.namespace,
            "ownerReferences": [{"kind": "StatefulSet", "name": "kafka", "controller": True}],
        },
        "spec": template["spec"],
    }
    autoscaler = find(rendered, "Deployment", "cluster-autoscaler")
    (container,) = autoscaler["spec"]["template"]["spec"]["containers"]
    options = cluster_autoscaler.parse_options(container["command"][1:] + container.get("args", []))

    assert "safe-to-evict" in str(cluster_autoscaler.blocker(broker, [], options))
