"""The AWS Load Balancer Controller (aws stage only), in kube-system: its ServiceAccount with the IRSA
role, the ClusterRole/Binding and leader-election Role it needs for Ingresses and TargetGroupBindings,
the two CRDs it watches (`TargetGroupBinding`, `IngressClassParams`), and its Deployment.

What the Helm chart adds that this leaves out: the mutating and validating webhooks (pod readiness
gates, TargetGroupBinding and Ingress validation) and their Service; `IngressClassParams` defaults;
the full OpenAPI schemas of the CRDs (these keep unknown fields). The controller's webhook server still
starts, so the deploy must provide its serving certificate as the Secret `WEBHOOK_CERT_SECRET`
(`tls.crt`, `tls.key`; any self-signed pair: no webhook configuration calls it).
"""

from __future__ import annotations

from infra.model import common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig, ModelError

NAME = "aws-load-balancer-controller"
NAMESPACE = "kube-system"
WEBHOOK_CERT_SECRET = "aws-load-balancer-webhook-tls"
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
GROUP = "elbv2.k8s.aws"
UID = 65532
RBAC = "rbac.authorization.k8s.io/v1"


def _crd(config: ModelConfig, kind: str, plural: str, scope: str) -> Obj:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": common.metadata(config, f"{plural}.{GROUP}", NAME, namespace=None),
        "spec": {
            "group": GROUP,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "scope": scope,
            "versions": [
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Obj:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _rbac(config: ModelConfig) -> list[Obj]:
    read = ["get", "list", "watch"]
    cluster_role = {
        "apiVersion": RBAC,
        "kind": "ClusterRole",
        "metadata": common.metadata(config, NAME, NAME, namespace=None),
        "rules": [
            _rule([GROUP], ["targetgroupbindings"], [*read, "create", "update", "patch", "delete"]),
            _rule([GROUP], ["targetgroupbindings/status"], ["update", "patch"]),
            _rule([GROUP], ["ingressclassparams"], read),
            _rule([""], ["events"], ["create", "patch"]),
            _rule([""], ["pods", "nodes", "namespaces", "endpoints", "services"], read),
            _rule([""], ["pods/status"], ["update", "patch"]),
            _rule([""], ["services", "services/status"], ["update", "patch"]),
            _rule(["discovery.k8s.io"], ["endpointslices"], read),
            _rule(["networking.k8s.io"], ["ingressclasses"], read),
            _rule(["networking.k8s.io"], ["ingresses"], [*read, "update", "patch"]),
            _rule(["networking.k8s.io"], ["ingresses/status"], ["update", "patch"]),
        ],
    }
    cluster_binding = {
        "apiVersion": RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": common.metadata(config, NAME, NAME, namespace=None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }
    leader = f"{NAME}-leader-election"
    role = {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": common.metadata(config, leader, NAME, namespace=NAMESPACE),
        "rules": [
            _rule(["coordination.k8s.io"], ["leases"], ["create"]),
            _rule(["coordination.k8s.io"], ["leases"], ["get", "update", "patch"]),
            _rule([""], ["configmaps"], ["create"]),
            _rule([""], ["configmaps"], ["get", "update", "patch"]),
        ],
    }
    binding = {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": common.metadata(config, leader, NAME, namespace=NAMESPACE),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": leader},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }
    return [cluster_role, cluster_binding, role, binding]


def _deployment(config: ModelConfig) -> Obj:
    container: Obj = {
        "name": "controller",
        "image": images.LOAD_BALANCER_CONTROLLER,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            f"--cluster-name={config.cluster_name}",
            "--ingress-class=alb",
            f"--aws-region={config.region}",
            f"--aws-vpc-tags=Name={config.vpc_name}",
        ],
        "ports": [
            {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
        ],
        "resources": common.resources("100m", "128Mi", "200m", "256Mi"),
        "readinessProbe": common.http_probe("/readyz", 61779, period=10, failures=2),
        "livenessProbe": common.http_probe("/healthz", 61779, period=10, failures=2, delay=30),
        "securityContext": common.container_security(UID),
        "volumeMounts": [{"name": "cert", "mountPath": CERT_DIR, "readOnly": True}],
    }
    annotations = common.skips(
        ("CKV_K8S_38", "the controller watches Ingresses and Services through the API with its token"),
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
                "metadata": {"labels": common.labels(config, NAME)},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": True,
                    "priorityClassName": "system-cluster-critical",
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": common.pod_security(UID),
                    "containers": [container],
                    "volumes": [{"name": "cert", "secret": {"secretName": WEBHOOK_CERT_SECRET}}],
                },
            },
        },
    }


def controller_objects(config: ModelConfig) -> list[Obj]:
    role_arn = config.role_arns.get(NAME)
    if not role_arn:
        raise ModelError(f"the aws stage needs role_arns[{NAME!r}] (the controller's IRSA role)")
    return [
        common.service_account(config, NAME, namespace=NAMESPACE, automount=True, role_arn=role_arn),
        _crd(config, "TargetGroupBinding", "targetgroupbindings", "Namespaced"),
        _crd(config, "IngressClassParams", "ingressclassparams", "Cluster"),
        *_rbac(config),
        _deployment(config),
    ]
