"""The OpenTelemetry Collector: OTLP in (HTTP 4318, gRPC 4317), batched; traces to the debug exporter and
the spanmetrics connector; metrics (the services' and the span metrics) out on a Prometheus endpoint
(8889) that Prometheus scrapes; logs to the debug exporter. Locally a stand-in receiver serves 4318 only,
so the probes check that port.
"""

from __future__ import annotations

from typing import Any

import yaml

from infra.model import common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import COLLECTOR

CONFIG_DIR = "/etc/otelcol-contrib"
HTTP_PORT = 4318
GRPC_PORT = 4317
METRICS_PORT = 8889
UID = 10001


def collector_config() -> dict[str, Any]:
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
            "batch": {"timeout": "5s"},
        },
        "connectors": {"spanmetrics": {"namespace": "traces.span.metrics"}},
        "exporters": {
            "debug": {"verbosity": "basic"},
            "prometheus": {
                "endpoint": f"0.0.0.0:{METRICS_PORT}",
                "resource_to_telemetry_conversion": {"enabled": True},
            },
        },
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["debug", "spanmetrics"],
                },
                "metrics": {
                    "receivers": ["otlp", "spanmetrics"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["prometheus"],
                },
                "logs": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["debug"],
                },
            }
        },
    }


def collector_objects(config: ModelConfig) -> list[Obj]:
    data = {"config.yaml": yaml.safe_dump(collector_config(), sort_keys=False)}
    tmp_volume, tmp_mount = common.tmp_volume()
    container: Obj = {
        "name": "otel-collector",
        "image": images.COLLECTOR,
        "imagePullPolicy": "IfNotPresent",
        "args": [f"--config={CONFIG_DIR}/config.yaml"],
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
                "metadata": {
                    "labels": common.labels(config, COLLECTOR),
                    "annotations": {
                        common.CHECKSUM_ANNOTATION: common.checksum(data),
                        common.SCRAPE: "true",
                        common.SCRAPE_PORT: str(METRICS_PORT),
                        common.SCRAPE_PATH: "/metrics",
                    },
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
