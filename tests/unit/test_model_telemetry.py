"""The telemetry path the model renders: the collector's configuration (OTLP in, batched; traces to Jaeger
and to spanmetrics; metrics to the Prometheus exporter; logs to the debug exporter), Jaeger v2 with its
own configuration and query API, Prometheus scraping the collector's exporter, Grafana's Jaeger data
source, and the network policies between them; each rendered configuration is one the stand-ins run."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra.model import images
from infra.model.collector import collector_config
from infra.model.jaeger import jaeger_config
from sim.standins.jaeger.distribution import JAEGER
from sim.telemetry.collector import config as config_file
from sim.telemetry.collector.components import Host
from sim.telemetry.collector.config import ComponentId
from sim.telemetry.collector.contrib import CONTRIB
from sim.telemetry.collector.service import build
from tests.unit.model_configs import STAGES, find, render_with
from tests.unit.test_model_network import admitted

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def mounted_config(objects: list[dict[str, Any]], name: str) -> tuple[dict[str, Any], list[str]]:
    """The configuration a Deployment's container reads (from the ConfigMap it mounts) and its args."""
    deployment = find(objects, "Deployment", name)
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (flag,) = [a for a in container["args"] if a.startswith("--config=")]
    path = flag.removeprefix("--config=")
    directory, _, file = path.rpartition("/")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    data = find(objects, "ConfigMap", volume["configMap"]["name"])["data"]
    return yaml.safe_load(data[file]), container["args"]


@pytest.fixture(params=sorted(STAGES))
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render_with(STAGES[request.param])


def test_the_collector_pipelines_send_traces_to_jaeger_and_spanmetrics_metrics_to_prometheus_logs_to_debug(
    objects: list[dict[str, Any]],
) -> None:
    config, _ = mounted_config(objects, "otel-collector")
    assert config == collector_config()
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"] == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["otlp/jaeger", "spanmetrics"],
    }
    assert pipelines["metrics"]["receivers"] == ["otlp", "spanmetrics"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert pipelines["logs"]["exporters"] == ["debug"]
    assert config["exporters"]["debug"]["verbosity"] == "detailed"
    protocols = config["receivers"]["otlp"]["protocols"]
    assert (protocols["http"]["endpoint"], protocols["grpc"]["endpoint"]) == ("0.0.0.0:4318", "0.0.0.0:4317")
    assert config["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:8889"


def test_the_collector_sends_to_the_port_jaeger_listens_on_through_its_service(
    objects: list[dict[str, Any]],
) -> None:
    collector, _ = mounted_config(objects, "otel-collector")
    jaeger, _ = mounted_config(objects, "jaeger")
    host, _, port = collector["exporters"]["otlp/jaeger"]["endpoint"].rpartition(":")
    service = find(objects, "Service", host)
    by_port = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert by_port[int(port)] == "otlp-grpc"
    assert jaeger["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == f"0.0.0.0:{port}"
    assert collector["exporters"]["otlp/jaeger"]["tls"] == {"insecure": True}


def test_jaeger_keeps_traces_in_memory_and_serves_its_query_api_on_16686(
    objects: list[dict[str, Any]],
) -> None:
    config, _ = mounted_config(objects, "jaeger")
    assert config == jaeger_config()
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["jaeger_storage_exporter"]
    (backend,) = config["extensions"]["jaeger_storage"]["backends"].values()
    assert backend["memory"]["max_traces"] > 0
    assert config["extensions"]["jaeger_query"]["http"]["endpoint"] == "0.0.0.0:16686"
    service = find(objects, "Service", "jaeger")
    assert {p["port"] for p in service["spec"]["ports"]} == {4317, 4318, 16686}
    deployment = find(objects, "Deployment", "jaeger")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == images.JAEGER
    assert DIGEST.search(images.JAEGER)
    assert "jaegertracing/jaeger:2." in images.JAEGER
    health = config["extensions"]["healthcheckv2"]["http"]["endpoint"]
    probe = container["readinessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert health == f"0.0.0.0:{ports[probe['port']]}"


@pytest.mark.parametrize(("name", "distribution"), [("otel-collector", CONTRIB), ("jaeger", JAEGER)])
def test_the_stand_ins_accept_the_rendered_configurations(
    objects: list[dict[str, Any]], name: str, distribution: Any
) -> None:
    config, _ = mounted_config(objects, name)
    service = build(config_file.parse(config, {}), distribution, Host("127.0.0.1"))
    assert service.receivers
    assert service.exporters


def test_prometheus_scrapes_the_collector_s_exporter_keeping_the_services_job_labels(
    objects: list[dict[str, Any]],
) -> None:
    prometheus = yaml.safe_load(find(objects, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "otel-collector"]
    assert job["honor_labels"] is True
    keep = next(r for r in job["relabel_configs"] if r["action"] == "keep")
    collector = find(objects, "Deployment", "otel-collector")["spec"]["template"]
    values = [
        collector["metadata"]["labels"]["app.kubernetes.io/name"],
        next(p["name"] for p in collector["spec"]["containers"][0]["ports"] if p["containerPort"] == 8889),
    ]
    assert re.fullmatch(keep["regex"], ";".join(values))
    # the pod job does not scrape it too (it would put job="pods" on the services' series)
    assert "prometheus.io/scrape" not in collector["metadata"].get("annotations", {})


def test_grafana_reads_traces_from_jaeger(objects: list[dict[str, Any]]) -> None:
    provisioning = find(objects, "ConfigMap", "grafana-provisioning")["data"]
    sources = yaml.safe_load(provisioning["datasources.yaml"])["datasources"]
    (jaeger,) = [s for s in sources if s["type"] == "jaeger"]
    assert jaeger["url"] == "http://jaeger:16686"


def test_only_the_collector_sends_to_jaeger_and_only_grafana_queries_it(
    objects: list[dict[str, Any]],
) -> None:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert admitted(policies, "otel-collector", "jaeger", 4317)
    assert admitted(policies, "grafana", "jaeger", 16686)
    assert not admitted(policies, "checkout", "jaeger", 4317)
    assert not admitted(policies, "frontend", "jaeger", 16686)


def test_the_collector_component_ids_parse() -> None:
    assert ComponentId.parse("otlp/jaeger", "exporters") == ComponentId("otlp", "jaeger")
    assert str(ComponentId("otlp", "jaeger")) == "otlp/jaeger"
