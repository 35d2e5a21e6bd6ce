"""The resource types the emulator serves: one table for discovery, routing, the store and the tables."""

from __future__ import annotations

from dataclasses import dataclass

KUBERNETES_VERSION = "v1.30.0"


@dataclass(frozen=True)
class ResourceType:
    """One REST resource, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> str:
        """Store key: unique across groups (`pods`, `deployments.apps`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_ALL = ("all",)
RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        ("status", "log", "eviction", "exec", "portforward", "proxy"),
        _ALL,
    ),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "services", "Service", True, ("svc",), ("status", "proxy"), _ALL),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("scale", "status"), _ALL),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("scale", "status"), _ALL),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("scale", "status"), _ALL),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("hpa",),
        ("status",),
        _ALL,
    ),
    # autoscaling/v1 is served from the same storage as v2 (see `conversion`); v2 comes first: preferred.
    ResourceType(
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("hpa",),
        ("status",),
        _ALL,
    ),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), ("status",)),
    ResourceType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
)

#: Kinds that are only ever created, answered at once and never stored (`kubectl auth can-i`); served
#: apart from the table above (no list, watch or discovery verbs but `create`).
REVIEW_TYPES: tuple[ResourceType, ...] = (
    ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
    ResourceType("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False),
)

#: One type per storage key: the version objects are stored in (several versions may share a key).
STORAGE_TYPES: tuple[ResourceType, ...] = tuple({rt.key: rt for rt in reversed(RESOURCE_TYPES)}.values())[
    ::-1
]

#: Verbs each resource and subresource supports (all of ours are full CRUD + watch).
RESOURCE_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "log": ("get",),
    "exec": ("create", "get"),
    "portforward": ("create", "get"),
    "eviction": ("create",),
    "proxy": ("create", "delete", "get", "patch", "update"),
}


def group_versions() -> dict[str, list[str]]:
    """Group name -> its versions, in table order (the core group is "")."""
    out: dict[str, list[str]] = {}
    for rt in RESOURCE_TYPES:
        versions = out.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)
    return out


def resources_in(group: str, version: str) -> list[ResourceType]:
    return [rt for rt in RESOURCE_TYPES if rt.group == group and rt.version == version]


def find(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if rt.group == group and rt.version == version and rt.plural == plural:
            return rt
    return None


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if rt.api_version == api_version and rt.kind == kind:
            return rt
    return None


def by_key(key: str) -> ResourceType:
    for rt in RESOURCE_TYPES:
        if rt.key == key:
            return rt
    raise KeyError(key)


NAMESPACE = by_key("namespaces")
SERVICE_ACCOUNT = by_key("serviceaccounts")
