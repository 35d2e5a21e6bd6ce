"""Synthetic monitoring of the public shop, through the ALB: one pod of two containers.

- `blackbox-exporter` (`prom/blackbox-exporter`): HTTP probes of the shop's pages (`PROBES`: the home page,
  a product page, the cart page), each request marked synthetic with the W3C baggage
  `synthetic_request=true`; Prometheus runs a probe at each scrape of `/probe` (job `synthetic-http`) and
  keeps its `probe_success`, `probe_duration_seconds` and `probe_http_status_code`.
- `journey` (`programs/synthetic_monitor.py`, run by the Python base image from a ConfigMap): a whole
  checkout (home, product, cart, checkout) every `JOURNEY_INTERVAL` (the stage's clock), its result and
  timings as metrics (`synthetic_journey_*`, scraped like any pod); and the blackbox exporter's targets as
  Prometheus' HTTP service discovery (`/targets`), since the ALB's address is known only once the load
  balancer controller has made it: the journey reads it from the Ingress's status (its service account may
  read the Ingress, nothing else) and offers the pages under it, probed by the exporter beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import yaml

from infra.model import alerting, common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import SYNTHETIC

BLACKBOX_PORT: Final = 9115
JOURNEY_PORT: Final = 9116
CONFIG_DIR: Final = "/etc/blackbox-exporter"
PROGRAMS_DIR: Final = "/opt/shopstack"
PROGRAM: Final = Path(__file__).with_name("programs") / "synthetic_monitor.py"
MODULE: Final = "http_2xx"
#: the pages the blackbox exporter probes, by probe name (product 66VCHSJNUP: not the one a flag fails)
PROBES: Final = {"home": "/", "product": "/product/66VCHSJNUP", "cart": "/cart"}
JOURNEY_PRODUCT: Final = "66VCHSJNUP"
#: how often the checkout journey runs, in AWS's time
JOURNEY_INTERVAL: Final = "1m"
PROBE_TIMEOUT: Final = "5s"
HTTP_JOB: Final = "synthetic-http"
BAGGAGE: Final = "synthetic_request=true"
USER_AGENT: Final = "shopstack-synthetic-monitor"


def blackbox_config() -> dict[str, Any]:
    return {
        "modules": {
            MODULE: {
                "prober": "http",
                "timeout": PROBE_TIMEOUT,
                "http": {
                    "method": "GET",
                    "valid_status_codes": [200],
                    "preferred_ip_protocol": "ip4",
                    "headers": {"baggage": BAGGAGE, "User-Agent": USER_AGENT},
                },
            }
        }
    }


def targets_url(config: ModelConfig) -> str:
    return f"http://{SYNTHETIC}.{config.namespace}.svc:{JOURNEY_PORT}/targets"


def scrape_config(config: ModelConfig) -> dict[str, Any]:
    """Prometheus' job that runs the blackbox exporter's probes of the targets the journey offers."""
    return {
        "job_name": HTTP_JOB,
        "metrics_path": "/probe",
        "http_sd_configs": [
            {"url": targets_url(config), "refresh_interval": alerting.scrape_interval(config)}
        ],
        "relabel_configs": [
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "service", "replacement": SYNTHETIC},
            {"target_label": "tier", "replacement": "platform"},
        ],
    }


def _env(name: str, value: str) -> Obj:
    return {"name": name, "value": value}


def _field(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def synthetic_objects(config: ModelConfig) -> list[Obj]:
    program = PROGRAM.name
    blackbox = {"blackbox.yml": yaml.safe_dump(blackbox_config(), sort_keys=False)}
    programs = {program: PROGRAM.read_text()}
    interval = alerting.seconds(alerting.scaled(JOURNEY_INTERVAL, config.alert_time_scale, 5))
    exporter: Obj = {
        "name": "blackbox-exporter",
        "image": images.BLACKBOX_EXPORTER,
        "imagePullPolicy": "IfNotPresent",
        "args": [f"--config.file={CONFIG_DIR}/blackbox.yml"],
        "ports": [{"name": "probes", "containerPort": BLACKBOX_PORT, "protocol": "TCP"}],
        "resources": common.resources("10m", "32Mi", "200m", "64Mi"),
        "readinessProbe": common.http_probe("/-/healthy", "probes", period=5, failures=3),
        "livenessProbe": common.http_probe("/-/healthy", "probes", period=10, failures=3, delay=5),
        "securityContext": common.container_security(common.SHOP_UID),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    journey: Obj = {
        "name": "journey",
        "image": images.PYTHON,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{PROGRAMS_DIR}/{program}"],
        "env": [
            _field("POD_IP", "status.podIP"),
            _field("POD_NAMESPACE", "metadata.namespace"),
            _env("PORT", str(JOURNEY_PORT)),
            _env("SHOP_INGRESS", config.project),
            _env("JOURNEY_INTERVAL_SECONDS", f"{interval:g}"),
            _env("JOURNEY_PRODUCT", JOURNEY_PRODUCT),
            _env("PROBES", json.dumps(PROBES)),
            _env("PROBE_MODULE", MODULE),
            _env("BLACKBOX_ADDRESS", f"$(POD_IP):{BLACKBOX_PORT}"),
            _env("PYTHONDONTWRITEBYTECODE", "1"),
        ],
        "ports": [{"name": "journey", "containerPort": JOURNEY_PORT, "protocol": "TCP"}],
        "resources": common.resources("10m", "32Mi", "200m", "64Mi"),
        "readinessProbe": common.http_probe("/healthz", "journey", period=5, failures=3),
        "livenessProbe": common.http_probe("/healthz", "journey", period=10, failures=3, delay=5),
        "securityContext": common.container_security(common.SHOP_UID),
        "volumeMounts": [{"name": "program", "mountPath": PROGRAMS_DIR, "readOnly": True}],
    }
    skips = common.skips(
        ("CKV_K8S_38", "the journey reads its Ingress's load balancer address with its service account token")
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, SYNTHETIC, SYNTHETIC, annotations=skips),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": common.selector(SYNTHETIC)},
            "template": {
                "metadata": {
                    "labels": common.labels(config, SYNTHETIC),
                    "annotations": {
                        common.CHECKSUM_ANNOTATION: common.checksum({**blackbox, **programs}),
                        common.SCRAPE: "true",
                        common.SCRAPE_PORT: str(JOURNEY_PORT),
                        common.SCRAPE_PATH: "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": SYNTHETIC,
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": common.pod_security(common.SHOP_UID),
                    "containers": [exporter, journey],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{SYNTHETIC}-config"}},
                        {"name": "program", "configMap": {"name": f"{SYNTHETIC}-program"}},
                    ],
                },
            },
        },
    }
    return [
        common.service_account(config, SYNTHETIC, automount=True),
        *_rbac(config),
        common.config_map(config, f"{SYNTHETIC}-config", SYNTHETIC, blackbox, "platform"),
        common.config_map(config, f"{SYNTHETIC}-program", SYNTHETIC, programs, "platform"),
        common.cluster_service(
            config,
            SYNTHETIC,
            SYNTHETIC,
            [common.port("journey", JOURNEY_PORT), common.port("probes", BLACKBOX_PORT)],
        ),
        deployment,
    ]


def _rbac(config: ModelConfig) -> list[Obj]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": common.metadata(config, SYNTHETIC, SYNTHETIC),
        "rules": [
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["ingresses"],
                "resourceNames": [config.project],
                "verbs": ["get"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": common.metadata(config, SYNTHETIC, SYNTHETIC),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SYNTHETIC},
        "subjects": [{"kind": "ServiceAccount", "name": SYNTHETIC, "namespace": config.namespace}],
    }
    return [role, binding]
