"""Alertmanager, and the webhook receiver it notifies.

Prometheus finds Alertmanager as it finds what it scrapes, by the namespace's pods (`alerting_config`:
the `alertmanager` pods' `http` port), and sends every alert of `alerts.yaml` there. Alertmanager
(`prom/alertmanager`, one replica, its gossip clustering off) groups them by alert and service and notifies
one receiver, `alert-receiver`: a small program of the project's (`programs/alert_receiver.py`, run by the
Python base image from a ConfigMap) that keeps the notifications and serves them back, so the integration
suite can see an alert arrive and resolve on every stage. A real pager or chat webhook would be another
receiver here. Alertmanager's waits follow the stage's clock (`alerting`): AWS's defaults are 30 s before a
new group's first notification, 5 min between a group's notifications, 4 h before repeating one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from infra.model import alerting, common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import ALERT_RECEIVER, ALERTMANAGER

PORT: Final = 9093
CONFIG_DIR: Final = "/etc/alertmanager"
DATA_DIR: Final = "/alertmanager"
UID: Final = 65534  # the image's `nobody`
RECEIVER_PORT: Final = 8080
RECEIVER_PATH: Final = "/alerts"
PROGRAMS_DIR: Final = "/opt/shopstack"
RECEIVER_PROGRAM: Final = Path(__file__).with_name("programs") / "alert_receiver.py"
#: Alertmanager's own defaults, in AWS's time
GROUP_WAIT: Final = "30s"
GROUP_INTERVAL: Final = "5m"
REPEAT_INTERVAL: Final = "4h"
RESOLVE_TIMEOUT: Final = "5m"
GROUP_BY: Final = ("alertname", "service")


def receiver_url(config: ModelConfig) -> str:
    return f"http://{ALERT_RECEIVER}.{config.namespace}.svc:{RECEIVER_PORT}{RECEIVER_PATH}"


def alertmanager_config(config: ModelConfig) -> dict[str, Any]:
    scale = config.alert_time_scale
    return {
        "global": {"resolve_timeout": alerting.scaled(RESOLVE_TIMEOUT, scale, 1)},
        "route": {
            "receiver": ALERT_RECEIVER,
            "group_by": list(GROUP_BY),
            "group_wait": alerting.scaled(GROUP_WAIT, scale, 1),
            "group_interval": alerting.scaled(GROUP_INTERVAL, scale, 1),
            "repeat_interval": alerting.scaled(REPEAT_INTERVAL, scale, 1),
        },
        "receivers": [
            {
                "name": ALERT_RECEIVER,
                "webhook_configs": [{"url": receiver_url(config), "send_resolved": True}],
            }
        ],
    }


def alerting_config(config: ModelConfig) -> dict[str, Any]:
    """Prometheus' `alerting` section: the namespace's Alertmanager pods, found as the scraped pods are."""
    meta = "__meta_kubernetes_pod_"
    return {
        "alertmanagers": [
            {
                "api_version": "v2",
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [config.namespace]}}],
                "relabel_configs": [
                    {
                        "source_labels": [f"{meta}label_app_kubernetes_io_name"],
                        "action": "keep",
                        "regex": ALERTMANAGER,
                    },
                    {"source_labels": [f"{meta}container_port_name"], "action": "keep", "regex": "http"},
                    {"source_labels": [f"{meta}phase"], "action": "keep", "regex": "Running"},
                ],
            }
        ]
    }


def _alertmanager(config: ModelConfig) -> list[Obj]:
    data = {"alertmanager.yml": yaml.safe_dump(alertmanager_config(config), sort_keys=False)}
    container: Obj = {
        "name": "alertmanager",
        "image": images.ALERTMANAGER,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            f"--config.file={CONFIG_DIR}/alertmanager.yml",
            f"--storage.path={DATA_DIR}",
            # one replica: no gossip peers to find
            "--cluster.listen-address=",
        ],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": common.resources("20m", "48Mi", "200m", "128Mi"),
        "readinessProbe": common.http_probe("/-/ready", "http", period=5, failures=6),
        "livenessProbe": common.http_probe("/-/healthy", "http", period=10, failures=3, delay=10),
        "securityContext": common.container_security(UID),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
        ],
    }
    deployment = _deployment(
        config,
        ALERTMANAGER,
        data,
        container,
        UID,
        [
            {"name": "config", "configMap": {"name": f"{ALERTMANAGER}-config"}},
            {"name": "data", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
        PORT,
    )
    return [
        common.service_account(config, ALERTMANAGER),
        common.config_map(config, f"{ALERTMANAGER}-config", ALERTMANAGER, data, "platform"),
        common.cluster_service(config, ALERTMANAGER, ALERTMANAGER, [common.port("http", PORT)]),
        deployment,
    ]


def _receiver(config: ModelConfig) -> list[Obj]:
    program = RECEIVER_PROGRAM.name
    data = {program: RECEIVER_PROGRAM.read_text()}
    container: Obj = {
        "name": "receiver",
        "image": images.PYTHON,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{PROGRAMS_DIR}/{program}"],
        "env": [
            {"name": "PORT", "value": str(RECEIVER_PORT)},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        "ports": [{"name": "http", "containerPort": RECEIVER_PORT, "protocol": "TCP"}],
        "resources": common.resources("10m", "32Mi", "100m", "64Mi"),
        "readinessProbe": common.http_probe("/healthz", "http", period=5, failures=3),
        "livenessProbe": common.http_probe("/healthz", "http", period=10, failures=3, delay=5),
        "securityContext": common.container_security(common.SHOP_UID),
        "volumeMounts": [{"name": "program", "mountPath": PROGRAMS_DIR, "readOnly": True}],
    }
    deployment = _deployment(
        config,
        ALERT_RECEIVER,
        data,
        container,
        common.SHOP_UID,
        [{"name": "program", "configMap": {"name": f"{ALERT_RECEIVER}-program"}}],
        RECEIVER_PORT,
    )
    return [
        common.service_account(config, ALERT_RECEIVER),
        common.config_map(config, f"{ALERT_RECEIVER}-program", ALERT_RECEIVER, data, "platform"),
        common.cluster_service(config, ALERT_RECEIVER, ALERT_RECEIVER, [common.port("http", RECEIVER_PORT)]),
        deployment,
    ]


def _deployment(
    config: ModelConfig,
    name: str,
    data: dict[str, str],
    container: Obj,
    uid: int,
    volumes: list[Obj],
    metrics_port: int,
) -> Obj:
    """One replica of `container`, recreated (never two at once), scraped on `metrics_port`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, name, name),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": common.selector(name)},
            "template": {
                "metadata": {
                    "labels": common.labels(config, name),
                    "annotations": {
                        common.CHECKSUM_ANNOTATION: common.checksum(data),
                        common.SCRAPE: "true",
                        common.SCRAPE_PORT: str(metrics_port),
                        common.SCRAPE_PATH: "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": common.pod_security(uid),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def alertmanager_objects(config: ModelConfig) -> list[Obj]:
    return [*_alertmanager(config), *_receiver(config)]
