"""The cluster autoscaler (`registry.k8s.io/autoscaling/cluster-autoscaler` 1.30), in kube-system: its
ServiceAccount with the IRSA role the deploy makes (`infra.aws.iam.cluster_autoscaler_role`), the RBAC of
upstream's AWS example manifest (`cluster-autoscaler-autodiscover.yaml`) and its Deployment.

It finds the node groups it may scale by their tags (`--node-group-auto-discovery=asg:tag=...`: the
`k8s.io/cluster-autoscaler/enabled` and `k8s.io/cluster-autoscaler/<cluster>` keys, which EKS puts on a
managed node group's Auto Scaling group and the deploy on the node group: `infra.aws.eks`). Its flags are
the deploy's settings (`infra.settings.ClusterAutoscaler`, upstream's defaults, times on the stage's
clock), and as upstream's AWS example it does not keep nodes for their pods' emptyDir volumes
(`--skip-nodes-with-local-storage=false`: every pod here has a scratch /tmp), while kube-system pods
without a disruption budget do keep their node (`--skip-nodes-with-system-pods=true`, the default).

Locally the image's stand-in (`sim.standins.cluster_autoscaler`) runs the same flags against the local
API and the EKS node group in the AWS emulator. Not rendered where the settings turn it off (kind, whose
nodes do not follow the node group).
"""

from __future__ import annotations

from typing import Final

from infra.model import common, images
from infra.model.common import Obj
from infra.model.config import Autoscaling, ModelConfig, ModelError

NAME: Final = "cluster-autoscaler"
NAMESPACE: Final = "kube-system"
#: metrics and `/health-check` (`--address`)
PORT: Final = 8085
#: the distroless image's nobody, as upstream's manifests run it
UID: Final = 65534
RBAC: Final = "rbac.authorization.k8s.io/v1"
ENABLED_TAG: Final = "k8s.io/cluster-autoscaler/enabled"


def cluster_tag(cluster_name: str) -> str:
    """The auto-discovery tag of `cluster_name`'s node groups (value `owned`)."""
    return f"k8s.io/cluster-autoscaler/{cluster_name}"


def discovery_tags(cluster_name: str) -> dict[str, str]:
    """The tags a node group carries to be found and scaled by this cluster's autoscaler."""
    return {ENABLED_TAG: "true", cluster_tag(cluster_name): "owned"}


def duration(seconds: float) -> str:
    """Seconds as a Go duration flag value (`10s`, `0.5s`)."""
    return f"{seconds:g}s"


def flags(config: ModelConfig) -> list[str]:
    """The autoscaler's flags, from the settings."""
    tuning: Autoscaling = config.autoscaling
    return [
        "--cloud-provider=aws",
        f"--namespace={NAMESPACE}",
        f"--node-group-auto-discovery=asg:tag={ENABLED_TAG},{cluster_tag(config.cluster_name)}",
        f"--scan-interval={duration(tuning.scan_interval_seconds)}",
        f"--scale-down-unneeded-time={duration(tuning.scale_down_unneeded_seconds)}",
        f"--scale-down-delay-after-add={duration(tuning.scale_down_delay_after_add_seconds)}",
        f"--scale-down-delay-after-failure={duration(tuning.scale_down_delay_after_failure_seconds)}",
        f"--scale-down-utilization-threshold={tuning.scale_down_utilization_threshold:g}",
        f"--expander={tuning.expander}",
        f"--balance-similar-node-groups={str(tuning.balance_similar_node_groups).lower()}",
        "--skip-nodes-with-local-storage=false",
        "--skip-nodes-with-system-pods=true",
        f"--address=:{PORT}",
        "--v=4",
        "--stderrthreshold=info",
    ]


def _rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None) -> Obj:
    rule: Obj = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        rule["resourceNames"] = names
    return rule


def _rbac(config: ModelConfig) -> list[Obj]:
    """Upstream's ClusterRole and kube-system Role for the AWS provider, and their bindings."""
    read = ["watch", "list", "get"]
    cluster_role = {
        "apiVersion": RBAC,
        "kind": "ClusterRole",
        "metadata": common.metadata(config, NAME, NAME, namespace=None),
        "rules": [
            _rule([""], ["events", "endpoints"], ["create", "patch"]),
            _rule([""], ["pods/eviction"], ["create"]),
            _rule([""], ["pods/status"], ["update"]),
            _rule([""], ["endpoints"], ["get", "update"], [NAME]),
            _rule([""], ["nodes"], [*read, "update"]),
            _rule(
                [""],
                [
                    "namespaces",
                    "pods",
                    "services",
                    "replicationcontrollers",
                    "persistentvolumeclaims",
                    "persistentvolumes",
                ],
                read,
            ),
            _rule(["extensions"], ["replicasets", "daemonsets"], read),
            _rule(["policy"], ["poddisruptionbudgets"], ["watch", "list"]),
            _rule(["apps"], ["statefulsets", "replicasets", "daemonsets"], read),
            _rule(
                ["storage.k8s.io"],
                ["storageclasses", "csinodes", "csidrivers", "csistoragecapacities", "volumeattachments"],
                read,
            ),
            _rule(["batch", "extensions"], ["jobs"], ["get", "list", "watch", "patch"]),
            _rule(["coordination.k8s.io"], ["leases"], ["create"]),
            _rule(["coordination.k8s.io"], ["leases"], ["get", "update"], [NAME]),
        ],
    }
    role = {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": common.metadata(config, NAME, NAME, namespace=NAMESPACE),
        "rules": [
            _rule([""], ["configmaps"], ["create", "list", "watch"]),
            _rule(
                [""],
                ["configmaps"],
                ["delete", "get", "update", "watch"],
                ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"],
            ),
        ],
    }
    subjects = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    cluster_binding = {
        "apiVersion": RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": common.metadata(config, NAME, NAME, namespace=None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": subjects,
    }
    binding = {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": common.metadata(config, NAME, NAME, namespace=NAMESPACE),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": subjects,
    }
    return [cluster_role, role, cluster_binding, binding]


def _deployment(config: ModelConfig) -> Obj:
    container: Obj = {
        "name": NAME,
        "image": images.CLUSTER_AUTOSCALER,
        "imagePullPolicy": "IfNotPresent",
        "command": ["./cluster-autoscaler"],
        "args": flags(config),
        "env": [{"name": "AWS_REGION", "value": config.region}],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        # upstream's example manifest: 100m and 600Mi, requested and limited alike
        "resources": common.resources("100m", "600Mi", "100m", "600Mi"),
        "readinessProbe": common.http_probe("/health-check", "http", period=10, failures=3),
        "livenessProbe": common.http_probe("/health-check", "http", period=10, failures=3, delay=30),
        "securityContext": common.container_security(UID),
    }
    annotations = common.skips(
        ("CKV_K8S_38", "the autoscaler reads pods, nodes and budgets and evicts pods through the API"),
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, NAME, NAME, namespace=NAMESPACE, annotations=annotations),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": common.selector(NAME)},
            "template": {
                "metadata": {
                    "labels": common.labels(config, NAME),
                    # it must not scale away the node it runs on while it works (upstream's FAQ)
                    "annotations": {common.SAFE_TO_EVICT: "false"},
                },
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": True,
                    "priorityClassName": "system-cluster-critical",
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": common.pod_security(UID),
                    "containers": [container],
                },
            },
        },
    }


def cluster_autoscaler_objects(config: ModelConfig) -> list[Obj]:
    """Its ServiceAccount (with its IRSA role), RBAC and Deployment; none when it is turned off."""
    if not config.autoscaling.cluster_autoscaler:
        return []
    role_arn = config.role_arns.get(NAME)
    if config.stage == "aws" and not role_arn:
        raise ModelError(f"the aws stage needs role_arns[{NAME!r}] (the cluster autoscaler's IRSA role)")
    return [
        common.service_account(config, NAME, namespace=NAMESPACE, automount=True, role_arn=role_arn),
        *_rbac(config),
        _deployment(config),
    ]
