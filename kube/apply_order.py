"""The order Kubernetes objects are applied in: every kind after the kinds its objects refer to.

A namespace before what lives in it, a CustomResourceDefinition before its resources, a StorageClass
before the StatefulSet whose claims name it, service accounts, roles, ConfigMaps and Secrets before the
workloads that use them, an IngressClass and the Services before the Ingress that routes to them. Pruning
goes the other way. Kinds not listed (custom resources) go last, after the definitions that make them.
The model renders in this order and the deploy applies in it: one list, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

APPLY_ORDER: Final = (
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "IngressClass",
    "Service",
    "StatefulSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
)
_RANK: Final = {kind: position for position, kind in enumerate(APPLY_ORDER)}


def apply_rank(obj: Mapping[str, Any]) -> int:
    """Where `obj` goes in the apply order (sort by it; prune in reverse)."""
    return _RANK.get(str(obj.get("kind", "")), len(APPLY_ORDER))
