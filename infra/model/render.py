"""`render(config)`: every Kubernetes object of the deploy, as plain dicts ready for server-side apply,
in apply order (the Namespace, then CRDs, StorageClasses, ServiceAccounts and RBAC, ConfigMaps and
Secrets, Services, workloads, HPAs, PDBs, NetworkPolicies, the IngressClass and the Ingress).
"""

from __future__ import annotations

from infra.model import common, load_balancer_controller
from infra.model.collector import collector_objects
from infra.model.common import Obj
from infra.model.config import ModelConfig, ModelError
from infra.model.grafana import grafana_objects
from infra.model.ingress import ingress, ingress_class
from infra.model.kafka import kafka_objects
from infra.model.network import network_policies
from infra.model.prometheus import prometheus_objects
from infra.model.services import SERVICE_NAMES, SERVICES
from infra.model.workloads import credentials_secret, flags_config_map, service_objects
from kube.apply_order import apply_rank

DIGEST_MARK = "@sha256:"


def _check(config: ModelConfig) -> None:
    for kind, names in (("image", config.images), ("replicas", config.replicas)):
        unknown = sorted(set(names) - set(SERVICE_NAMES))
        if unknown:
            raise ModelError(
                f"{kind} for unknown service {unknown[0]!r} (services: {', '.join(SERVICE_NAMES)})"
            )
    for name in SERVICE_NAMES:
        image = config.images.get(name)
        if not image:
            raise ModelError(f"no image for service {name!r}")
        if DIGEST_MARK not in image:
            raise ModelError(f"image of {name!r} is not pinned by digest: {image!r}")
    for name, count in config.replicas.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ModelError(f"replicas of {name!r} must be a whole number of at least 1, not {count!r}")
    known_accounts = {"cart", "accounting", load_balancer_controller.NAME}
    unknown_roles = sorted(set(config.role_arns) - known_accounts)
    if unknown_roles:
        raise ModelError(f"role_arns for unknown service account {unknown_roles[0]!r}")
    if config.stage == "aws":
        for account in ("cart", "accounting"):
            if not config.role_arns.get(account):
                raise ModelError(f"the aws stage needs role_arns[{account!r}] (its IRSA role)")


def _namespace(config: ModelConfig) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": common.metadata(config, config.namespace, config.namespace, namespace=None),
    }


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
    objects += kafka_objects(config)
    objects += collector_objects(config)
    if config.prometheus:
        objects += prometheus_objects(config)
    objects += grafana_objects(config)
    if config.stage == "aws":
        objects += load_balancer_controller.controller_objects(config)
    objects += network_policies(config)
    objects += [ingress_class(config), ingress(config)]
    return sorted(objects, key=apply_rank)
