"""`kubectl get` prints, line for line, what it prints against kube-apiserver 1.30 for the kinds whose
columns are more than NAME and AGE: the emulator's Table cells are those of kube-apiserver's printers
(`pkg/printers/internalversion/printers.go`, and the apiserver's default table convertor for Role and
ClusterRole), and the real kubectl lays them out. AGE cells, which depend on when the test runs, are
replaced with `<age>`; the Events are given timestamps hours and days old, so their ages are exact.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.k8s.conftest import Kubectl
from tests.support.cluster import poll

pytestmark = pytest.mark.timeout(90)

#: kubectl's HumanDuration of a few seconds to a few minutes
AGE = re.compile(r"^\d+(s|m\d*s?)$")


def apply(kubectl: Kubectl, manifest: str) -> None:
    kubectl("apply", "-f", "-", input=manifest)


def listed(kubectl: Kubectl, *args: str) -> list[str]:
    """The lines of `kubectl get ARGS`, each row's last cell (its AGE) replaced with `<age>`."""
    header, *rows = kubectl("get", *args).splitlines()
    out = [header]
    for row in rows:
        head, _, age = row.rpartition(" ")
        assert AGE.match(age), row
        out.append(f"{head} <age>")
    return out


NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata: {name: cols}
"""


def test_poddisruptionbudgets(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: cols}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api, namespace: cols}
spec: {maxUnavailable: "50%", selector: {matchLabels: {app: api}}}
""",
    )
    # two Ready pods for `web`: the disruption controller then allows one disruption
    for pod in ("web-1", "web-2"):
        kubectl("run", pod, "-n", "cols", "--image=web:1", "--labels=app=web")
        ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
        kubectl(
            "patch", "pod", pod, "-n", "cols", "--subresource=status", "--type=merge", "-p", json.dumps(ready)
        )
    expected = [
        "NAME   MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE",
        "api    N/A             50%               0                     <age>",
        "web    1               N/A               1                     <age>",
    ]
    assert poll(lambda: listed(kubectl, "pdb", "-n", "cols") == expected), kubectl("get", "pdb", "-n", "cols")


def test_serviceaccounts(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: cols}
secrets: [{name: builder-token}]
""",
    )
    expected = [
        "NAME      SECRETS   AGE",
        "builder   1         <age>",
        "default   0         <age>",
    ]
    assert poll(lambda: listed(kubectl, "sa", "-n", "cols") == expected), listed(kubectl, "sa", "-n", "cols")


def test_endpointslices(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abcde, namespace: cols, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}, {name: metrics, port: 9090, protocol: TCP}]
endpoints:
- addresses: ["10.0.0.1"]
- addresses: ["10.0.0.2"]
- addresses: ["10.0.0.3"]
- addresses: ["10.0.0.4"]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: empty, namespace: cols}
addressType: IPv4
endpoints: []
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: named, namespace: cols}
addressType: FQDN
ports: [{name: dns}, {protocol: UDP}]
endpoints: [{addresses: ["db.example.com"]}]
""",
    )
    assert listed(kubectl, "endpointslices", "-n", "cols") == [
        "NAME        ADDRESSTYPE   PORTS       ENDPOINTS                                AGE",
        "empty       IPv4          <unset>     <unset>                                  <age>",
        "named       FQDN          dns,*       db.example.com                           <age>",
        "web-abcde   IPv4          8080,9090   10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...   <age>",
    ]


def test_endpoints_list_each_port_of_each_address(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: v1
kind: Endpoints
metadata: {name: two-ports, namespace: cols}
subsets:
- addresses: [{ip: 10.1.0.1}, {ip: 10.1.0.2}]
  ports: [{name: a, port: 80}, {name: b, port: 90}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: headless, namespace: cols}
subsets: [{addresses: [{ip: 10.1.0.3}]}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: unready, namespace: cols}
subsets: [{notReadyAddresses: [{ip: 10.1.0.4}], ports: [{port: 80}]}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: none, namespace: cols}
""",
    )
    assert listed(kubectl, "endpoints", "-n", "cols") == [
        "NAME        ENDPOINTS                                         AGE",
        "headless    10.1.0.3                                          <age>",
        "none        <none>                                            <age>",
        "two-ports   10.1.0.1:80,10.1.0.2:80,10.1.0.1:90 + 1 more...   <age>",
        "unready                                                       <age>",
    ]


def test_networkpolicies(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: cols}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: cols}
spec: {podSelector: {matchLabels: {tier: front, app: web}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: shop, namespace: cols}
spec:
  podSelector:
    matchLabels: {app: shop}
    matchExpressions:
    - {key: tier, operator: In, values: [front, back]}
    - {key: legacy, operator: DoesNotExist}
""",
    )
    assert listed(kubectl, "netpol", "-n", "cols") == [
        "NAME       POD-SELECTOR                            AGE",
        "deny-all   <none>                                  <age>",
        "shop       app=shop,!legacy,tier in (back,front)   <age>",
        "web        app=web,tier=front                      <age>",
    ]


def test_leases(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: held, namespace: cols}
spec: {holderIdentity: node-a, leaseDurationSeconds: 40}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: free, namespace: cols}
spec: {}
""",
    )
    assert listed(kubectl, "leases", "-n", "cols") == [
        "NAME   HOLDER   AGE",
        "free            <age>",
        "held   node-a   <age>",
    ]


def test_roles_and_clusterroles_show_when_they_were_created(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: cols}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cols-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
""",
    )
    role = json.loads(kubectl("get", "role", "reader", "-n", "cols", "-o", "json"))["metadata"]
    assert kubectl("get", "roles", "-n", "cols").splitlines() == [
        "NAME     CREATED AT",
        f"reader   {role['creationTimestamp']}",
    ]
    cluster_role = json.loads(kubectl("get", "clusterrole", "cols-reader", "-o", "json"))["metadata"]
    assert kubectl("get", "clusterrole", "cols-reader").splitlines() == [
        "NAME          CREATED AT",
        f"cols-reader   {cluster_role['creationTimestamp']}",
    ]


def test_rolebindings_wide_show_their_subjects(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        NAMESPACE
        + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers, namespace: cols}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: builder, namespace: cols}
""",
    )
    assert listed(kubectl, "rolebindings", "-n", "cols") == [
        "NAME      ROLE          AGE",
        "readers   Role/reader   <age>",
    ]
    header, row = kubectl("get", "rolebindings", "-n", "cols", "-o", "wide").splitlines()
    assert header.split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert row[header.index("USERS") :] == "alice, bob   devs     cols/builder"


def test_ingressclasses(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: cols-alb}
spec:
  controller: ingress.k8s.aws/alb
  parameters: {apiGroup: elbv2.k8s.aws, kind: IngressClassParams, name: alb}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: cols-plain}
spec: {controller: example.com/ingress}
""",
    )
    assert listed(kubectl, "ingressclass", "cols-alb", "cols-plain") == [
        "NAME         CONTROLLER            PARAMETERS                             AGE",
        "cols-alb     ingress.k8s.aws/alb   IngressClassParams.elbv2.k8s.aws/alb   <age>",
        "cols-plain   example.com/ingress   <none>                                 <age>",
    ]


def test_events_and_their_wide_columns(kubectl: Kubectl) -> None:
    now = datetime.now(UTC)
    stamp = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    micro = (now - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S.123456Z")
    events: list[dict[str, Any]] = [
        {
            "metadata": {"name": "a-backoff", "namespace": "events"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "events"}
            | {"fieldPath": "spec.containers{web}"},
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": first,
            "lastTimestamp": stamp,
            "count": 3,
        },
        {
            "metadata": {"name": "b-registered", "namespace": "events"},
            "involvedObject": {"kind": "Node", "name": "node-a"},
            "type": "Normal",
            "reason": "RegisteredNode",
            "message": "Registered Node node-a in Controller",
            "eventTime": micro,
            "reportingComponent": "node-controller",
            "reportingInstance": "cm-1",
            "action": "Register",
        },
    ]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "events"}}
    items = [namespace, *({"apiVersion": "v1", "kind": "Event", **event} for event in events)]
    kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert kubectl("get", "events", "-n", "events").splitlines() == [
        "LAST SEEN   TYPE      REASON           OBJECT        MESSAGE",
        "3h          Warning   BackOff          pod/web-1     Back-off restarting failed container",
        "20m         Normal    RegisteredNode   node/node-a   Registered Node node-a in Controller",
    ]
    header, *rows = kubectl("get", "events", "-n", "events", "-o", "wide").splitlines()
    wide = ("SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME")
    assert re.split(r"\s{3,}", header) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", *wide]
    at = {name: header.index(name) for name in wide}
    cells = [
        {
            "SUBOBJECT": row[at["SUBOBJECT"] : at["SOURCE"]].strip(),
            "SOURCE": row[at["SOURCE"] : at["MESSAGE"]].strip(),
            "FIRST SEEN": row[at["FIRST SEEN"] : at["COUNT"]].strip(),
            "COUNT": row[at["COUNT"] : at["NAME"]].strip(),
            "NAME": row[at["NAME"] :],
        }
        for row in rows
    ]
    assert cells == [
        {
            "SUBOBJECT": "spec.containers{web}",
            "SOURCE": "kubelet, node-a",
            "FIRST SEEN": "2d",
            "COUNT": "3",
            "NAME": "a-backoff",
        },
        {
            "SUBOBJECT": "",
            "SOURCE": "node-controller, cm-1",
            "FIRST SEEN": "20m",
            "COUNT": "1",
            "NAME": "b-registered",
        },
    ]
