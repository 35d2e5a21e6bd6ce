"""What every rendered object shares: labels (part-of, the deploy's prune label, the component's name),
metadata, the restricted security contexts, probes and the config checksum.

The prune label is the deploy's own: every object it applies carries it, and it deletes only objects that
carry it and are no longer rendered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from infra.model.config import ModelConfig

Obj = dict[str, Any]

PRUNE_LABEL = "app.kubernetes.io/managed-by"
PRUNE_VALUE = "shopstack-deploy"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
TIER_LABEL = "shopstack.io/tier"  # "shop" (the nine services) or "platform"
CHECKSUM_ANNOTATION = "shopstack.io/config-checksum"
#: the scrape annotations Prometheus's pod discovery keeps (see `prometheus.py`)
SCRAPE = "prometheus.io/scrape"
SCRAPE_PORT = "prometheus.io/port"
SCRAPE_PATH = "prometheus.io/path"
#: the uid:gid of the project's images (containers/images.toml)
SHOP_UID = 10001
ZONE_KEY = "topology.kubernetes.io/zone"
#: the annotation that keeps a pod's node from being scaled down by the cluster autoscaler (`"false"`),
#: or lets it go (`"true"`)
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


def labels(config: ModelConfig, component: str, tier: str = "platform") -> dict[str, str]:
    return {
        NAME_LABEL: component,
        PART_OF_LABEL: config.project,
        PRUNE_LABEL: PRUNE_VALUE,
        TIER_LABEL: tier,
    }


def selector(component: str) -> dict[str, str]:
    """The pod selector of a component: its name label (immutable in a Deployment, so nothing else)."""
    return {NAME_LABEL: component}


def metadata(
    config: ModelConfig,
    name: str,
    component: str,
    *,
    namespace: str | None = "",
    tier: str = "platform",
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """Metadata of an object; `namespace=None` for cluster-scoped ones, "" for the config's namespace."""
    meta: Obj = {"name": name, "labels": labels(config, component, tier)}
    if namespace is not None:
        meta["namespace"] = namespace or config.namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def skips(*checks: tuple[str, str]) -> dict[str, str]:
    """checkov skip annotations, each check with the reason it does not apply."""
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(checks, 1)}


def checksum(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def pod_security(uid: int = SHOP_UID, gid: int | None = None) -> Obj:
    group = uid if gid is None else gid
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": group,
        "fsGroup": group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(uid: int = SHOP_UID, gid: int | None = None, *, read_only: bool = True) -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid if gid is None else gid,
        "readOnlyRootFilesystem": read_only,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Obj:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def http_probe(path: str, port: int | str, *, period: int, failures: int, delay: int = 0) -> Obj:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def tcp_probe(port: int | str, *, period: int, failures: int, delay: int = 0) -> Obj:
    return {
        "tcpSocket": {"port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def zone_spread(component: str) -> list[Obj]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(component)},
        }
    ]


def tmp_volume() -> tuple[Obj, Obj]:
    """An emptyDir on /tmp (the root filesystem is read-only): the volume and its mount."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, {"name": "tmp", "mountPath": "/tmp"}


def config_map(config: ModelConfig, name: str, component: str, data: Mapping[str, str], tier: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(config, name, component, tier=tier),
        "data": dict(data),
    }


def service_account(
    config: ModelConfig,
    name: str,
    *,
    namespace: str = "",
    automount: bool = False,
    role_arn: str | None = None,
    tier: str = "platform",
) -> Obj:
    annotations = {"eks.amazonaws.com/role-arn": role_arn} if role_arn else None
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(config, name, name, namespace=namespace, tier=tier, annotations=annotations),
        "automountServiceAccountToken": automount,
    }


def cluster_service(
    config: ModelConfig, name: str, component: str, ports: list[Obj], *, headless: bool = False
) -> Obj:
    spec: Obj = {"type": "ClusterIP", "selector": selector(component), "ports": ports}
    if headless:
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": True}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(config, name, component),
        "spec": spec,
    }


def port(name: str, number: int) -> Obj:
    return {"name": name, "port": number, "targetPort": name, "protocol": "TCP"}
