"""Jaeger v2, the trace store (the OpenTelemetry Demo's): the collector sends it spans over OTLP (gRPC 4317;
HTTP 4318 too), it keeps them in memory (`max_traces`, the oldest trace evicted first), and serves its
query API on 16686 (`/api/services`, `/api/traces`, `/api/dependencies`... what the Jaeger UI, Grafana's
Jaeger data source and the integration suite read).

Jaeger v2 is an OpenTelemetry Collector distribution: its configuration is a collector configuration
with Jaeger's extensions (`jaeger_storage`, `jaeger_query`) and exporter (`jaeger_storage_exporter`),
given here in full (a ConfigMap, `--config`) rather than the image's built-in all-in-one defaults, which
listen on localhost only. One replica with `Recreate`: the store is the process's memory, so a second
replica would hold other traces. Locally the image's stand-in (`sim.standins.jaeger`) runs this file.
"""

from __future__ import annotations

from typing import Any

import yaml

from infra.model import common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import JAEGER

CONFIG_DIR = "/etc/jaeger"
CONFIG_FILE = "config.yaml"
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
QUERY_PORT = 16686
HEALTH_PORT = 13133
HEALTH_PATH = "/status"
UID = 10001  # the image's USER
STORE = "memstore"
#: traces kept (each with all its spans; the OpenTelemetry Demo keeps 5000); the oldest is evicted first
MAX_TRACES = 5_000


def jaeger_config() -> dict[str, Any]:
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
        },
        "extensions": {
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
            "jaeger_query": {"storage": {"traces": STORE}, "http": {"endpoint": f"0.0.0.0:{QUERY_PORT}"}},
            "jaeger_storage": {"backends": {STORE: {"memory": {"max_traces": MAX_TRACES}}}},
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
                    "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
                }
            }
        },
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": STORE}},
    }


def jaeger_objects(config: ModelConfig) -> list[Obj]:
    data = {CONFIG_FILE: yaml.safe_dump(jaeger_config(), sort_keys=False)}
    tmp_volume, tmp_mount = common.tmp_volume()
    container: Obj = {
        "name": "jaeger",
        "image": images.JAEGER,
        "imagePullPolicy": "IfNotPresent",
        "args": [f"--config={CONFIG_DIR}/{CONFIG_FILE}"],
        "ports": [
            {"name": "otlp-grpc", "containerPort": OTLP_GRPC_PORT, "protocol": "TCP"},
            {"name": "otlp-http", "containerPort": OTLP_HTTP_PORT, "protocol": "TCP"},
            {"name": "query", "containerPort": QUERY_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        "resources": common.resources("100m", "256Mi", "500m", "1Gi"),
        "readinessProbe": common.http_probe(HEALTH_PATH, "health", period=5, failures=3),
        # a restart loses every stored trace: only a minute of silence counts as dead, not a slow answer
        "livenessProbe": {
            **common.http_probe(HEALTH_PATH, "health", period=10, failures=6, delay=10),
            "timeoutSeconds": 5,
        },
        "securityContext": common.container_security(UID),
        "volumeMounts": [tmp_mount, {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, JAEGER, JAEGER),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": common.selector(JAEGER)},
            "template": {
                "metadata": {
                    "labels": common.labels(config, JAEGER),
                    "annotations": {common.CHECKSUM_ANNOTATION: common.checksum(data)},
                },
                "spec": {
                    "serviceAccountName": JAEGER,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": common.pod_security(UID),
                    "containers": [container],
                    "volumes": [tmp_volume, {"name": "config", "configMap": {"name": f"{JAEGER}-config"}}],
                },
            },
        },
    }
    ports = [
        common.port("otlp-grpc", OTLP_GRPC_PORT),
        common.port("otlp-http", OTLP_HTTP_PORT),
        common.port("query", QUERY_PORT),
    ]
    return [
        common.service_account(config, JAEGER),
        common.config_map(config, f"{JAEGER}-config", JAEGER, data, "platform"),
        common.cluster_service(config, JAEGER, JAEGER, ports),
        deployment,
    ]
