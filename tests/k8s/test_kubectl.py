"""The real kubectl binary against the emulator: apply, edit, diff, get, describe, scale, wait, watch,
explain, delete."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.k8s.conftest import Kubectl

pytestmark = pytest.mark.timeout(90)

MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web:1
        ports: [{containerPort: 8080}]
        env: [{name: MODE, value: "a"}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: flags, namespace: shop, labels: {app: web}}
data: {flags.json: "{}"}
"""


def test_apply_client_side_then_update(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", "-", input=MANIFEST)
    assert "deployment.apps/web created" in out
    assert "service/web created" in out
    again = kubectl("apply", "-f", "-", input=MANIFEST)
    assert "deployment.apps/web unchanged" in again
    kubectl("set", "env", "deploy/web", "-n", "shop", "EXTRA=1")  # another manager's: apply keeps it
    changed = kubectl.run("apply", "-f", "-", input=MANIFEST.replace('value: "a"', 'value: "b"'))
    assert "deployment.apps/web configured" in changed.stdout
    assert "warning" not in changed.stderr.lower(), changed.stderr  # kubectl patches from our schemas
    dep = json.loads(kubectl("get", "deploy", "web", "-n", "shop", "-o", "json"))
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "MODE", "value": "b"}, {"name": "EXTRA", "value": "1"}]  # merged by name
    assert dep["metadata"]["generation"] == 3
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]


def test_apply_server_side_and_conflict(kubectl: Kubectl) -> None:
    out = kubectl("apply", "--server-side", "-f", "-", input=MANIFEST)
    assert "deployment.apps/web serverside-applied" in out
    other = MANIFEST.replace("replicas: 2", "replicas: 4")
    result = kubectl.run(
        "apply", "--server-side", "--field-manager=other", "-f", "-", input=other, check=False
    )
    assert result.returncode != 0
    assert "conflict" in result.stderr
    assert ".spec.replicas" in result.stderr
    kubectl("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-", input=other)
    assert kubectl("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}") == "4"


def test_get_columns_selectors_and_json(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFEST)
    table = kubectl("get", "deploy,svc", "-n", "shop")
    assert "READY" in table
    assert "UP-TO-DATE" in table
    assert "AVAILABLE" in table
    assert "CLUSTER-IP" in table
    assert "80/TCP" in table
    wide = kubectl("get", "deploy", "-n", "shop", "-o", "wide")
    assert "IMAGES" in wide
    assert "web:1" in wide
    assert kubectl("get", "cm", "-n", "shop", "-l", "app=web", "-o", "name").split() == ["configmap/flags"]
    assert "No resources found" in kubectl.run("get", "cm", "-n", "shop", "-l", "app=none").stderr
    nodes = kubectl.run("get", "nodes")
    assert nodes.returncode == 0
    listed = json.loads(kubectl("get", "ns", "-o", "json"))
    assert {"default", "kube-system", "shop"} <= {n["metadata"]["name"] for n in listed["items"]}
    assert kubectl("auth", "can-i", "create", "deployments").strip() == "yes"
    sa = kubectl("get", "sa", "default", "-n", "shop", "-o", "name")
    assert sa.strip() == "serviceaccount/default"


def test_describe_scale_and_delete(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFEST)
    described = kubectl("describe", "deploy", "web", "-n", "shop")
    assert "Replicas:" in described
    assert "web:1" in described
    assert "scaled" in kubectl("scale", "deploy", "web", "-n", "shop", "--replicas=5")
    assert kubectl("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}") == "5"
    missing = kubectl.run("get", "deploy", "nope", "-n", "shop", check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr
    assert "deleted" in kubectl("delete", "deploy", "web", "-n", "shop")
    assert "deleted" in kubectl("delete", "ns", "shop")
    gone = kubectl.run("get", "svc", "web", "-n", "shop", check=False)
    assert gone.returncode != 0


def test_wait_for_jsonpath_after_patch(kubectl: Kubectl) -> None:
    kubectl("run", "p1", "--image=busybox", "--restart=Never")
    waiter = kubectl.popen("wait", "--for=jsonpath={.status.phase}=Running", "pod/p1", "--timeout=20s")
    try:
        time.sleep(0.5)
        kubectl(
            "patch",
            "pod",
            "p1",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Running"}}',
        )
        out, err = waiter.communicate(timeout=25)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert "condition met" in out


def test_get_watch_streams_changes(kubectl: Kubectl) -> None:
    watcher = kubectl.popen("get", "cm", "-w", "--request-timeout=4s")
    try:
        time.sleep(1.0)
        kubectl("create", "cm", "live", "--from-literal=a=1")
        kubectl("label", "cm", "live", "x=y")
        try:
            out, _ = watcher.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            watcher.kill()
            out, _ = watcher.communicate()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    lines = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert lines[0] == "NAME"
    assert lines.count("live") >= 2


def test_strict_field_validation(kubectl: Kubectl) -> None:
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flags}\nbogus: 1\ndata: {a: b}\n"
    result = kubectl.run("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert "bogus" in result.stderr
    warned = kubectl.run("apply", "--validate=warn", "-f", "-", input=bad)
    assert "bogus" in warned.stderr
    kubectl("delete", "cm", "flags")


def test_every_served_kind_applies_and_lists(kubectl: Kubectl) -> None:
    manifest = (Path(__file__).parent / "all_kinds.yaml").read_text()
    out = kubectl("apply", "-f", "-", input=manifest)
    assert out.count(" created") == manifest.count("\nkind: ") == 12
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", input=manifest)
    listed = kubectl("get", "sts,hpa,pdb,netpol,ing,ingressclass,lease,endpointslice,ep,nodes,secrets,ev")
    for name in (
        "statefulset.apps/kafka",
        "horizontalpodautoscaler.autoscaling/web",
        "node/node-1",
        "Scheduled",
    ):
        assert name in listed
    secret = kubectl("get", "secret", "s1", "-o", "jsonpath={.data.password}")
    assert base64.b64decode(secret) == b"hunter2"


def test_diff_uses_server_dry_run(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFEST)
    same = kubectl.run("diff", "-f", "-", input=MANIFEST, check=False)
    assert same.returncode == 0, same.stderr
    changed = kubectl.run("diff", "-f", "-", input=MANIFEST.replace("web:1", "web:2"), check=False)
    assert changed.returncode == 1, changed.stderr
    assert "+        image: web:2" in changed.stdout or "web:2" in changed.stdout
    assert kubectl("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={..image}") == "web:1"


OWNED = """
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-1
  ownerReferences:
  - {apiVersion: apps/v1, kind: Deployment, name: web, uid: UID, controller: true}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"""


def test_logs_and_cascading_delete(kubectl: Kubectl) -> None:
    kubectl("run", "p1", "--image=busybox", "--restart=Never")
    assert kubectl.run("logs", "p1").returncode == 0
    kubectl("create", "deployment", "web", "--image=web:1")
    uid = kubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.uid}")
    kubectl("apply", "-f", "-", input=OWNED.replace("UID", uid))
    kubectl("delete", "deploy", "web", "--cascade=orphan")
    orphan = json.loads(kubectl("get", "rs", "web-1", "-o", "json"))
    assert "ownerReferences" not in orphan["metadata"]
    kubectl("create", "deployment", "web", "--image=web:1")
    uid = kubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.uid}")
    kubectl("apply", "-f", "-", input=OWNED.replace("UID", uid))
    kubectl("delete", "deploy", "web")
    assert kubectl.run("get", "rs", "web-1", check=False).returncode != 0


def test_autoscale_writes_v1_and_reads_back_as_v2(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "web", "--image=web:1")
    assert "autoscaled" in kubectl("autoscale", "deploy", "web", "--min=2", "--max=4", "--cpu-percent=70")
    hpa = json.loads(kubectl("get", "hpa", "web", "-o", "json"))
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    v1 = json.loads(kubectl("get", "horizontalpodautoscalers.v1.autoscaling", "web", "-o", "json"))
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    header, row = kubectl("get", "hpa").splitlines()
    assert header.split()[:3] == ["NAME", "REFERENCE", "TARGETS"]
    assert "cpu: <unknown>/70%" in row  # no measurement yet: no pods run here


def test_explain_every_served_kind_from_both_openapi_versions(kubectl: Kubectl) -> None:
    for resource in kubectl("api-resources", "-o", "name").split():
        for output in ("plaintext", "plaintext-openapiv2"):
            explained = kubectl.run("explain", resource, f"--output={output}", check=False)
            assert explained.returncode == 0, f"{resource} ({output}): {explained.stderr}"
            assert "KIND:" in explained.stdout
    strategy = kubectl("explain", "deployment.spec.strategy")
    assert strategy.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n")
    assert "FIELD: strategy <DeploymentStrategy>" in strategy
    assert "rollingUpdate\t<RollingUpdateDeployment>" in strategy
    v2 = kubectl("explain", "deployment.spec.strategy", "--output=plaintext-openapiv2")
    assert "RESOURCE: strategy <Object>" in v2
    assert "Type of deployment." in v2
    assert "maxSurge\t<IntOrString>" in kubectl("explain", "deploy.spec.strategy.rollingUpdate")
    assert "limits\t<map[string]Quantity>" in kubectl("explain", "pod.spec.containers.resources")
    recursive = kubectl("explain", "hpa.spec", "--recursive")
    assert "averageUtilization\t<integer>" in recursive


def test_edit_patches_what_the_editor_changed(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", "-", input=MANIFEST)
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/image: web:1/image: web:2/" "$1"\n')
    editor.chmod(0o755)
    argv = [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "edit", "deploy/web", "-n", "shop"]
    edited = subprocess.run(
        argv, env={**os.environ, "KUBE_EDITOR": str(editor)}, capture_output=True, text=True, timeout=30
    )
    assert edited.returncode == 0, edited.stderr
    assert "deployment.apps/web edited" in edited.stdout
    dep = json.loads(kubectl("get", "deploy", "web", "-n", "shop", "-o", "json"))
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["env"]) == ("web:2", [{"name": "MODE", "value": "a"}])
