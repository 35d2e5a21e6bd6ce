"""The OpenTelemetry Collector, the one path of the shop's telemetry, as the OpenTelemetry Demo runs it.

OTLP in (HTTP 4318, gRPC 4317) → `memory_limiter`, `batch` → per signal:

- traces to the trace store (Jaeger's OTLP gRPC endpoint, `infra.model.jaeger`) and to the `spanmetrics`
  connector, which turns them into RED metrics (calls and a duration histogram per service, span name,
  kind and status);
- metrics (the services' own, and spanmetrics') to the `prometheus` exporter on 8889, which Prometheus
  scrapes (its `otel-collector` job, `infra.model.prometheus`);
- logs to the `debug` exporter at `detailed` verbosity: the collector's own log, which `kubectl logs`
  (the pods/log API) reads at every stage. There is no log store here: Jaeger keeps traces only, and a
  Loki or OpenSearch is not deployed, so Grafana shows traces and metrics but not logs.

The image's own default config is replaced by this one (a ConfigMap mounted where the image reads it,
named by `--config`). Locally, the image's stand-in (`sim.telemetry.collector`) runs this same file.
"""

from __future__ import annotations

from typing import Any

import yaml

from infra.model import common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import COLLECTOR, JAEGER

CONFIG_DIR = "/etc/otelcol-contrib"
CONFIG_FILE = "config.yaml"
HTTP_PORT = 4318
GRPC_PORT = 4317
METRICS_PORT = 8889
#: Jaeger's OTLP gRPC port (`infra.model.jaeger.OTLP_GRPC_PORT`)
JAEGER_OTLP_PORT = 4317
UID = 10001
#: the spanmetrics connector's metric name prefix (its default, written out: dashboards and alerts name it)
SPANMETRICS_NAMESPACE = "traces.span.metrics"
SPANMETRICS_FLUSH_INTERVAL = "15s"


def collector_config() -> dict[str, Any]:
    batched = ["memory_limiter", "batch"]
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"0.0.0.0:{GRPC_PORT}"},
                    "http": {"endpoint": f"0.0.0.0:{HTTP_PORT}"},
                }
            }
        },
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20},
            "batch": {"timeout": "2s"},
        },
        "connectors": {
            "spanmetrics": {
                "namespace": SPANMETRICS_NAMESPACE,
                "metrics_flush_interval": SPANMETRICS_FLUSH_INTERVAL,
            }
        },
        "exporters": {
            f"otlp/{JAEGER}": {"endpoint": f"{JAEGER}:{JAEGER_OTLP_PORT}", "tls": {"insecure": True}},
            "prometheus": {
                "endpoint": f"0.0.0.0:{METRICS_PORT}",
                "resource_to_telemetry_conversion": {"enabled": True},
            },
            "debug": {"verbosity": "detailed", "sampling_initial": 10, "sampling_thereafter": 1},
        },
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": batched,
                    "exporters": [f"otlp/{JAEGER}", "spanmetrics"],
                },
                "metrics": {
                    "receivers": ["otlp", "spanmetrics"],
                    "processors": batched,
                    "exporters": ["prometheus"],
                },
                "logs": {"receivers": ["otlp"], "processors": batched, "exporters": ["debug"]},
            }
        },
    }


def collector_objects(config: ModelConfig) -> list[Obj]:
    data = {CONFIG_FILE: yaml.safe_dump(collector_config(), sort_keys=False)}
    tmp_volume, tmp_mount = common.tmp_volume()
    container: Obj = {
        "name": "otel-collector",
        "image": images.COLLECTOR,
        "imagePullPolicy": "IfNotPresent",
        "args": [f"--config={CONFIG_DIR}/{CONFIG_FILE}"],
        "ports": [
            {"name": "otlp-http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "otlp-grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": common.resources("100m", "256Mi", "500m", "512Mi"),
        "readinessProbe": common.tcp_probe("otlp-http", period=5, failures=3),
        "livenessProbe": common.tcp_probe("otlp-http", period=10, failures=3, delay=10),
        "securityContext": common.container_security(UID),
        "volumeMounts": [tmp_mount, {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, COLLECTOR, COLLECTOR),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": common.selector(COLLECTOR)},
            "template": {
                # no scrape annotations: Prometheus' `otel-collector` job scrapes the exporter, keeping the
                # `job` and `instance` labels it sets (the services' own), which the pod job would overwrite
                "metadata": {
                    "labels": common.labels(config, COLLECTOR),
                    "annotations": {common.CHECKSUM_ANNOTATION: common.checksum(data)},
                },
                "spec": {
                    "serviceAccountName": COLLECTOR,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": common.pod_security(UID),
                    "containers": [container],
                    "volumes": [tmp_volume, {"name": "config", "configMap": {"name": f"{COLLECTOR}-config"}}],
                },
            },
        },
    }
    ports = [
        common.port("otlp-http", HTTP_PORT),
        common.port("otlp-grpc", GRPC_PORT),
        common.port("metrics", METRICS_PORT),
    ]
    return [
        common.service_account(config, COLLECTOR),
        common.config_map(config, f"{COLLECTOR}-config", COLLECTOR, data, "platform"),
        common.cluster_service(config, COLLECTOR, COLLECTOR, ports),
        deployment,
    ]
