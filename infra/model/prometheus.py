"""Prometheus: pod discovery in the namespace (pods annotated `prometheus.io/scrape: "true"` are scraped
on `prometheus.io/port` at `prometheus.io/path`), the shop's alert rules (`alerts.yaml`, in the same
ConfigMap so that the relative `rule_files` entry resolves beside prometheus.yml), RBAC to list and watch
pods, endpoints and services, and the `prometheus` Service on 9090. Alerts go to the namespace's
Alertmanager pods (`infra.model.alertmanager`); kube-state-metrics and the synthetic monitor's probes have
jobs of their own (`infra.model.kube_state_metrics`, `infra.model.synthetic`); the scrape and evaluation
interval and the rules' durations follow the stage's clock (`infra.model.alerting`).

Discovery is `kubernetes_sd_configs` in both stages, reading the API with the pod's service account
token. The local cloud's Prometheus stand-in (`sim.standins.prometheus`) turns it into a file discovery it
keeps from the local API with the same `__meta_kubernetes_pod_*` labels, since Debian's 2.42 binary has
no Kubernetes discovery. Everything else in the config is valid for 2.42 (the tests check it with
`promtool`).
"""

from __future__ import annotations

from typing import Any

import yaml

from infra.model import alerting, common, images, kube_state_metrics, synthetic
from infra.model.alertmanager import alerting_config
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import PROMETHEUS

PORT = 9090
CONFIG_DIR = "/etc/prometheus"
DATA_DIR = "/prometheus"
UID = 65534  # the image's `nobody`
ALERTS_FILE = alerting.ALERTS_FILE


def _meta(name: str) -> str:
    return f"__meta_kubernetes_pod_{name}"


def prometheus_config(config: ModelConfig) -> dict[str, Any]:
    discovery: dict[str, Any] = {"role": "pod", "namespaces": {"names": [config.namespace]}}
    relabel = [
        {"source_labels": [_meta("annotation_prometheus_io_scrape")], "action": "keep", "regex": "true"},
        {"source_labels": [_meta("phase")], "action": "drop", "regex": "Pending|Succeeded|Failed|Unknown"},
        {
            "source_labels": [_meta("annotation_prometheus_io_path")],
            "action": "replace",
            "regex": "(.+)",
            "target_label": "__metrics_path__",
        },
        {
            "source_labels": ["__address__", _meta("annotation_prometheus_io_port")],
            "action": "replace",
            "regex": r"([^:]+)(?::\d+)?;(\d+)",
            "replacement": "$1:$2",
            "target_label": "__address__",
        },
        {"source_labels": [_meta("label_app_kubernetes_io_name")], "target_label": "service"},
        {"source_labels": [_meta("label_shopstack_io_tier")], "target_label": "tier"},
        {"source_labels": [_meta("name")], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
    ]
    return {
        "global": {
            # AWS's 15 s, on the stage's clock (infra.model.alerting)
            "scrape_interval": alerting.scrape_interval(config),
            "evaluation_interval": alerting.scrape_interval(config),
            "external_labels": {"cluster": config.cluster_name, "stage": config.stage},
        },
        "rule_files": [ALERTS_FILE.name],
        "alerting": alerting_config(config),
        "scrape_configs": [
            {"job_name": "pods", "kubernetes_sd_configs": [discovery], "relabel_configs": relabel},
            # the collector's prometheus exporter (infra.model.collector): the services' OTLP metrics and
            # the spanmetrics connector's, keeping the `job`/`instance` the exporter sets (the service's)
            {
                "job_name": "otel-collector",
                "honor_labels": True,
                "kubernetes_sd_configs": [discovery],
                "relabel_configs": [
                    {
                        "source_labels": [
                            _meta("label_app_kubernetes_io_name"),
                            _meta("container_port_name"),
                        ],
                        "action": "keep",
                        "regex": "otel-collector;metrics",
                    },
                    {
                        "source_labels": [_meta("phase")],
                        "action": "drop",
                        "regex": "Pending|Succeeded|Failed",
                    },
                ],
            },
            kube_state_metrics.scrape_config(config),
            synthetic.scrape_config(config),
        ],
    }


def _rbac(config: ModelConfig) -> list[Obj]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": common.metadata(config, PROMETHEUS, PROMETHEUS),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "endpoints", "services"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": common.metadata(config, PROMETHEUS, PROMETHEUS),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PROMETHEUS},
        "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": config.namespace}],
    }
    return [role, binding]


def prometheus_objects(config: ModelConfig) -> list[Obj]:
    data = {
        "prometheus.yml": yaml.safe_dump(prometheus_config(config), sort_keys=False),
        ALERTS_FILE.name: alerting.rules_text(config),
    }
    container: Obj = {
        "name": "prometheus",
        "image": images.PROMETHEUS,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            f"--config.file={CONFIG_DIR}/prometheus.yml",
            f"--storage.tsdb.path={DATA_DIR}",
            "--storage.tsdb.retention.time=2d",
        ],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": common.resources("200m", "512Mi", "1", "1Gi"),
        "readinessProbe": common.http_probe("/-/ready", "http", period=5, failures=6),
        "livenessProbe": common.http_probe("/-/healthy", "http", period=10, failures=3, delay=15),
        "securityContext": common.container_security(UID),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
        ],
    }
    skips = common.skips(
        ("CKV_K8S_38", "Prometheus discovers pods through the API with its service account token")
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, PROMETHEUS, PROMETHEUS, annotations=skips),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": common.selector(PROMETHEUS)},
            "template": {
                "metadata": {
                    "labels": common.labels(config, PROMETHEUS),
                    "annotations": {
                        common.CHECKSUM_ANNOTATION: common.checksum(data),
                        common.SCRAPE: "true",
                        common.SCRAPE_PORT: str(PORT),
                        common.SCRAPE_PATH: "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": PROMETHEUS,
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": common.pod_security(UID),
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{PROMETHEUS}-config"}},
                        {"name": "data", "emptyDir": {"sizeLimit": "2Gi"}},
                    ],
                },
            },
        },
    }
    return [
        common.service_account(config, PROMETHEUS, automount=True),
        *_rbac(config),
        common.config_map(config, f"{PROMETHEUS}-config", PROMETHEUS, data, "platform"),
        common.cluster_service(config, PROMETHEUS, PROMETHEUS, [common.port("http", PORT)]),
        deployment,
    ]
