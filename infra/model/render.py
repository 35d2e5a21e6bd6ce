"""`render(config)`: every Kubernetes object of the deploy, as plain dicts ready for server-side apply,
in apply order (the Namespace, then CRDs, StorageClasses, ServiceAccounts and RBAC, ConfigMaps and
Secrets, Services, workloads, HPAs, PDBs, NetworkPolicies, the IngressClass and the Ingress).
"""

from __future__ import annotations

import re

from infra.model import cluster_autoscaler, common, load_balancer_controller
from infra.model.alertmanager import alertmanager_objects
from infra.model.collector import collector_objects
from infra.model.common import Obj
from infra.model.config import ModelConfig, ModelError
from infra.model.grafana import grafana_objects
from infra.model.ingress import ingress, ingress_class
from infra.model.jaeger import jaeger_objects
from infra.model.kafka import kafka_objects
from infra.model.kube_state_metrics import kube_state_metrics_objects
from infra.model.load_generator import load_generator_objects
from infra.model.network import network_policies
from infra.model.prometheus import prometheus_objects
from infra.model.release import STRATEGIES
from infra.model.services import LOAD_GENERATOR, SERVICE_NAMES, SERVICES
from infra.model.synthetic import synthetic_objects
from infra.model.workloads import credentials_secret, flags_config_map, service_objects
from kube.apply_order import apply_rank

DIGEST_MARK = "@sha256:"
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: what runs from the project's own images: the shop's services and the load generator
IMAGE_NAMES = (*SERVICE_NAMES, LOAD_GENERATOR)


def _check(config: ModelConfig) -> None:
    for kind, names, known in (
        ("image", config.images, IMAGE_NAMES),
        ("replicas", config.replicas, SERVICE_NAMES),
    ):
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ModelError(f"{kind} for unknown service {unknown[0]!r} (services: {', '.join(known)})")
    for name in IMAGE_NAMES:
        image = config.images.get(name)
        if not image:
            raise ModelError(f"no image for service {name!r}")
        if DIGEST_MARK not in image:
            raise ModelError(f"image of {name!r} is not pinned by digest: {image!r}")
    for name, count in config.replicas.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ModelError(f"replicas of {name!r} must be a whole number of at least 1, not {count!r}")
    for name, variables in config.env.items():
        for variable in variables:
            if not ENV_NAME.fullmatch(variable):
                raise ModelError(f"env of {name!r}: {variable!r} is not an environment variable name")
    named = (
        ("strategy", config.strategies, SERVICE_NAMES),
        ("release", config.releases, SERVICE_NAMES),
        ("env", config.env, IMAGE_NAMES),
    )
    for kind, given, known in ((kind, set(names), known) for kind, names, known in named):
        unknown = sorted(given - set(known))
        if unknown:
            raise ModelError(f"{kind} for unknown service {unknown[0]!r} (services: {', '.join(known)})")
    for name, strategy in config.strategies.items():
        if strategy not in STRATEGIES:
            raise ModelError(f"strategy of {name!r} must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    for name in config.releases:
        if config.strategy(name) != "blue-green":
            raise ModelError(f"a release of {name!r}, whose strategy is {config.strategy(name)}")
    known_accounts = {
        "cart",
        "accounting",
        "checkout",
        load_balancer_controller.NAME,
        cluster_autoscaler.NAME,
    }
    unknown_roles = sorted(set(config.role_arns) - known_accounts)
    if unknown_roles:
        raise ModelError(f"role_arns for unknown service account {unknown_roles[0]!r}")
    if config.stage == "aws":
        for account in ("cart", "accounting", "checkout"):
            if not config.role_arns.get(account):
                raise ModelError(f"the aws stage needs role_arns[{account!r}] (its IRSA role)")


def _namespace(config: ModelConfig) -> Obj:
    namespace = common.metadata(config, config.namespace, config.namespace, namespace=None)
    # the AWS Load Balancer Controller adds a readiness gate to the pods of its targets here: a pod is
    # Ready only once its target is healthy in its target group (the local ALB controller does the same)
    namespace["labels"][READINESS_GATE_LABEL] = "enabled"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": namespace}


def render(config: ModelConfig) -> list[Obj]:
    """Every object, in apply order. Raises `ModelError` naming the bad input."""
    _check(config)
    objects: list[Obj] = [_namespace(config), flags_config_map(config)]
    secret = credentials_secret(config)
    if secret is not None:
        objects.append(secret)
    for row in SERVICES:
        replicas = config.replicas.get(row.name, row.replicas)
        objects += service_objects(config, row, config.images[row.name], replicas)
    objects += load_generator_objects(config, config.images[LOAD_GENERATOR])
    objects += kafka_objects(config)
    objects += collector_objects(config)
    objects += jaeger_objects(config)
    if config.prometheus:
        objects += prometheus_objects(config)
        # what Prometheus alone makes use of: alerting, the objects' state, the synthetic probes
        objects += alertmanager_objects(config)
        objects += kube_state_metrics_objects(config)
        objects += synthetic_objects(config)
    objects += grafana_objects(config)
    if config.stage == "aws":
        objects += load_balancer_controller.controller_objects(config)
    objects += cluster_autoscaler.cluster_autoscaler_objects(config)
    objects += network_policies(config)
    objects += [ingress_class(config), ingress(config)]
    return sorted(objects, key=apply_rank)
