"""Grafana with its datasource (Prometheus at http://prometheus:9090) and dashboards provisioned from
the repository (`infra/dashboards/*.json`), read-only for anonymous viewers; the login form is off.

One ConfigMap holds the provisioning tree (`datasources/`, `dashboards/` under the provisioning
directory, by `items` paths), another the dashboards. The provider names the dashboards directory by
the `SHOPSTACK_DASHBOARDS_DIR` variable (Grafana expands variables in provisioning files), so the path
is the container's in AWS and the pod's mount in the local stand-in alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from infra.model import alerting, common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import GRAFANA, PROMETHEUS

PORT = 3000
UID = 10001
PROVISIONING_DIR = "/etc/grafana/provisioning"
DASHBOARDS_DIR = "/etc/grafana/dashboards"
DATA_DIR = "/var/lib/grafana"
DASHBOARDS_VARIABLE = "SHOPSTACK_DASHBOARDS_DIR"
DASHBOARD_FILES = Path(__file__).resolve().parents[1] / "dashboards"
DATASOURCE_UID = "prometheus"


def datasources(scrape_interval: str = "15s") -> dict[str, Any]:
    """The data sources; `scrape_interval` is Prometheus' (Grafana's least step, in `$__rate_interval`)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": DATASOURCE_UID,
                "access": "proxy",
                "url": f"http://{PROMETHEUS}:9090",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": scrape_interval, "httpMethod": "POST"},
            },
            # the trace store (infra.model.jaeger): Grafana's Jaeger data source reads its query API
            {
                "name": "Jaeger",
                "type": "jaeger",
                "uid": "jaeger",
                "access": "proxy",
                "url": "http://jaeger:16686",
                "isDefault": False,
                "editable": False,
            },
        ],
    }


def dashboard_providers() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "shopstack",
                "orgId": 1,
                "folder": "Shopstack",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": f"${{{DASHBOARDS_VARIABLE}}}"},
            }
        ],
    }


def dashboards() -> dict[str, str]:
    """The repository's dashboards by file name, each checked to be a JSON object with a uid and title."""
    found: dict[str, str] = {}
    for path in sorted(DASHBOARD_FILES.glob("*.json")):
        document = json.loads(path.read_text())
        if not isinstance(document, dict) or not document.get("uid") or not document.get("title"):
            raise ValueError(f"{path}: a dashboard needs a uid and a title")
        found[path.name] = json.dumps(document, indent=1, sort_keys=True) + "\n"
    return found


def grafana_objects(config: ModelConfig) -> list[Obj]:
    provisioning = {
        "datasources.yaml": yaml.safe_dump(datasources(alerting.scrape_interval(config)), sort_keys=False),
        "dashboards.yaml": yaml.safe_dump(dashboard_providers(), sort_keys=False),
    }
    boards = dashboards()
    env = {
        "GF_PATHS_PROVISIONING": PROVISIONING_DIR,
        "GF_PATHS_DATA": DATA_DIR,
        "GF_LOG_MODE": "console",
        "GF_AUTH_ANONYMOUS_ENABLED": "true",
        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
        "GF_AUTH_DISABLE_LOGIN_FORM": "true",
        "GF_AUTH_BASIC_ENABLED": "false",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_SERVER_HTTP_PORT": str(PORT),
        DASHBOARDS_VARIABLE: DASHBOARDS_DIR,
    }
    tmp_volume, tmp_mount = common.tmp_volume()
    container: Obj = {
        "name": "grafana",
        "image": images.GRAFANA,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": common.resources("100m", "192Mi", "500m", "384Mi"),
        "readinessProbe": common.http_probe("/api/health", "http", period=5, failures=6),
        "livenessProbe": common.http_probe("/api/health", "http", period=10, failures=3, delay=30),
        "securityContext": common.container_security(UID),
        "volumeMounts": [
            tmp_mount,
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "provisioning", "mountPath": PROVISIONING_DIR, "readOnly": True},
            {"name": "dashboards", "mountPath": DASHBOARDS_DIR, "readOnly": True},
        ],
    }
    items = [
        {"key": "datasources.yaml", "path": "datasources/datasources.yaml"},
        {"key": "dashboards.yaml", "path": "dashboards/dashboards.yaml"},
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, GRAFANA, GRAFANA),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": common.selector(GRAFANA)},
            "template": {
                "metadata": {
                    "labels": common.labels(config, GRAFANA),
                    "annotations": {
                        common.CHECKSUM_ANNOTATION: common.checksum(provisioning),
                        common.SCRAPE: "true",
                        common.SCRAPE_PORT: str(PORT),
                        common.SCRAPE_PATH: "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": GRAFANA,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": common.pod_security(UID),
                    "containers": [container],
                    "volumes": [
                        tmp_volume,
                        {"name": "data", "emptyDir": {"sizeLimit": "512Mi"}},
                        {
                            "name": "provisioning",
                            "configMap": {"name": f"{GRAFANA}-provisioning", "items": items},
                        },
                        {"name": "dashboards", "configMap": {"name": f"{GRAFANA}-dashboards"}},
                    ],
                },
            },
        },
    }
    return [
        common.service_account(config, GRAFANA),
        common.config_map(config, f"{GRAFANA}-provisioning", GRAFANA, provisioning, "platform"),
        common.config_map(config, f"{GRAFANA}-dashboards", GRAFANA, boards, "platform"),
        common.cluster_service(config, GRAFANA, GRAFANA, [common.port("http", PORT)]),
        deployment,
    ]
