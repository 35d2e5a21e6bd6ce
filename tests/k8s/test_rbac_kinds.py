"""The RBAC kinds the deploy's model uses (Prometheus's Role and RoleBinding, the load balancer
controller's ClusterRole and ClusterRoleBinding): real kubectl applies, lists and validates them."""

from __future__ import annotations

import pytest

from tests.k8s.conftest import Kubectl

pytestmark = pytest.mark.timeout(90)

RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [pods, endpoints]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: default}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ingress-reader}
rules:
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read-ingresses}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ingress-reader}
"""


def test_rbac_kinds_apply_list_and_delete(kubectl: Kubectl) -> None:
    assert kubectl("apply", "-f", "-", input=RBAC).count(" created") == 4
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", input=RBAC)
    assert "pod-reader" in kubectl("get", "roles")
    bindings = kubectl("get", "rolebindings,clusterrolebindings")
    assert "Role/pod-reader" in bindings
    assert "ClusterRole/ingress-reader" in bindings
    assert "ingress-reader" in kubectl("get", "clusterroles")
    kubectl("delete", "role", "pod-reader")
    assert "pod-reader" not in kubectl("get", "roles")


def test_rbac_objects_are_validated(kubectl: Kubectl) -> None:
    bad = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: bad}\nrules: [{verbs: 3}]\n"
    result = kubectl.run("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert "verbs" in result.stderr
