"""The one declarative model of the deploy's Kubernetes state: `render(ModelConfig)` returns every object.

- `config`: `ModelConfig`, the inputs (stage, images, flags, replicas, tables, IAM roles, endpoints);
- `services`: the table of the nine services and the caller graph (`CALLERS`) NetworkPolicies enforce;
- `workloads`: one service's ServiceAccount, ConfigMap, Service, Deployment, HPA, PDB; the flags file;
- `kafka`, `collector`, `prometheus`, `grafana`, `load_balancer_controller`, `ingress`, `network`:
  the platform around the shop;
- `common`: labels (the deploy's prune label), security contexts, probes; `render`: all of it, in order.

Pure: no I/O but reading the repository's dashboards and alert rules.
"""

from infra.model.common import PART_OF_LABEL, PRUNE_LABEL, PRUNE_VALUE
from infra.model.config import ModelConfig, ModelError
from infra.model.render import render
from infra.model.services import ANYWHERE, CALLERS, SERVICE_NAMES, SERVICES

__all__ = [
    "ANYWHERE",
    "CALLERS",
    "PART_OF_LABEL",
    "PRUNE_LABEL",
    "PRUNE_VALUE",
    "SERVICES",
    "SERVICE_NAMES",
    "ModelConfig",
    "ModelError",
    "render",
]
