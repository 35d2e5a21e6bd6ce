"""kube-state-metrics: the namespace's Kubernetes objects as metrics, for the alerts Prometheus' own scrapes
cannot see.

A scrape tells whether a pod answers; it cannot tell that a Deployment has fewer available replicas than
it wants, that an HPA sits at its maximum, or that a container is in CrashLoopBackOff between restarts
(a pod that dies at start is never scraped at all). kube-state-metrics reads those from the API
(`kube_deployment_*`, `kube_statefulset_*`, `kube_horizontalpodautoscaler_*`,
`kube_pod_container_status_*`) as kubernetes-mixin's alerts expect them. It watches this namespace only
(`--namespaces`), so a Role suffices; its metrics carry the objects' own `namespace`/`pod`/`deployment`
labels, so Prometheus scrapes it in a job of its own with `honor_labels` (`scrape_config`), not through
the pods' job, whose target labels would rename them.
"""

from __future__ import annotations

from typing import Any, Final

from infra.model import common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import KUBE_STATE_METRICS

PORT: Final = 8080
TELEMETRY_PORT: Final = 8081
UID: Final = 65534  # the image's `nobody`
JOB: Final = KUBE_STATE_METRICS
#: the kinds it reports, as kube-state-metrics names them, and the API resources it lists for them
RESOURCES: Final = {
    "deployments": ("apps", "deployments"),
    "horizontalpodautoscalers": ("autoscaling", "horizontalpodautoscalers"),
    "pods": ("", "pods"),
    "statefulsets": ("apps", "statefulsets"),
}


def scrape_config(config: ModelConfig) -> dict[str, Any]:
    """Prometheus' job for kube-state-metrics: its pod, its labels kept as it reports them."""
    meta = "__meta_kubernetes_pod_"
    return {
        "job_name": JOB,
        "honor_labels": True,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [config.namespace]}}],
        "relabel_configs": [
            {
                "source_labels": [f"{meta}label_app_kubernetes_io_name"],
                "action": "keep",
                "regex": KUBE_STATE_METRICS,
            },
            {"source_labels": [f"{meta}container_port_name"], "action": "keep", "regex": "http-metrics"},
            {"source_labels": [f"{meta}phase"], "action": "keep", "regex": "Running"},
            {"target_label": "service", "replacement": KUBE_STATE_METRICS},
            {"target_label": "tier", "replacement": "platform"},
        ],
    }


def _rbac(config: ModelConfig) -> list[Obj]:
    by_group: dict[str, list[str]] = {}
    for group, resource in RESOURCES.values():
        by_group.setdefault(group, []).append(resource)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": common.metadata(config, KUBE_STATE_METRICS, KUBE_STATE_METRICS),
        "rules": [
            {"apiGroups": [group], "resources": sorted(resources), "verbs": ["list", "watch"]}
            for group, resources in sorted(by_group.items())
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": common.metadata(config, KUBE_STATE_METRICS, KUBE_STATE_METRICS),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": KUBE_STATE_METRICS},
        "subjects": [{"kind": "ServiceAccount", "name": KUBE_STATE_METRICS, "namespace": config.namespace}],
    }
    return [role, binding]


def kube_state_metrics_objects(config: ModelConfig) -> list[Obj]:
    container: Obj = {
        "name": "kube-state-metrics",
        "image": images.KUBE_STATE_METRICS,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            f"--port={PORT}",
            f"--telemetry-port={TELEMETRY_PORT}",
            f"--namespaces={config.namespace}",
            f"--resources={','.join(sorted(RESOURCES))}",
        ],
        "ports": [
            {"name": "http-metrics", "containerPort": PORT, "protocol": "TCP"},
            {"name": "telemetry", "containerPort": TELEMETRY_PORT, "protocol": "TCP"},
        ],
        "resources": common.resources("20m", "48Mi", "200m", "128Mi"),
        "readinessProbe": common.http_probe("/readyz", TELEMETRY_PORT, period=5, failures=3),
        "livenessProbe": common.http_probe("/livez", PORT, period=10, failures=3, delay=10),
        "securityContext": common.container_security(UID),
    }
    skips = common.skips(
        ("CKV_K8S_38", "kube-state-metrics lists the namespace's objects with its service account token")
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, KUBE_STATE_METRICS, KUBE_STATE_METRICS, annotations=skips),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": common.selector(KUBE_STATE_METRICS)},
            "template": {
                "metadata": {"labels": common.labels(config, KUBE_STATE_METRICS)},
                "spec": {
                    "serviceAccountName": KUBE_STATE_METRICS,
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": common.pod_security(UID),
                    "containers": [container],
                },
            },
        },
    }
    return [
        common.service_account(config, KUBE_STATE_METRICS, automount=True),
        *_rbac(config),
        common.cluster_service(
            config, KUBE_STATE_METRICS, KUBE_STATE_METRICS, [common.port("http-metrics", PORT)]
        ),
        deployment,
    ]
