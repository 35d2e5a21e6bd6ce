"""The HTTP surface, spoken to directly: discovery, health, Status, Table, openapi, watch, validation."""

from __future__ import annotations

import http.client
import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.k8s.conftest import K8sApi, start_k8s_api

pytestmark = pytest.mark.timeout(60)
KUBECTL_RETRY_SECONDS = 5
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _client(api: K8sApi) -> httpx.Client:
    return httpx.Client(base_url=api.url, timeout=10)


def _cm(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


def test_version_health_and_discovery(k8s_api: K8sApi) -> None:
    with _client(k8s_api) as c:
        assert c.get("/version").json()["gitVersion"] == "v1.30.0"
        assert c.get("/version/").json()["minor"] == "30"
        for path in ("/healthz", "/livez", "/readyz"):
            assert c.get(path).text == "ok"
        verbose = c.get("/readyz?verbose").text
        assert "[+]ping ok" in verbose
        assert verbose.strip().endswith("readyz check passed")
        assert c.get("/api").json()["versions"] == ["v1"]
        groups = {g["name"] for g in c.get("/apis").json()["groups"]}
        assert {"apps", "autoscaling", "policy", "networking.k8s.io", "coordination.k8s.io"} <= groups
        core = {r["name"] for r in c.get("/api/v1").json()["resources"]}
        assert {
            "pods",
            "pods/log",
            "pods/status",
            "services",
            "endpoints",
            "serviceaccounts",
            "events",
        } <= core
        apps = {r["name"]: r for r in c.get("/apis/apps/v1").json()["resources"]}
        assert apps["deployments/scale"]["kind"] == "Scale"
        assert c.get("/apis/apps").json()["preferredVersion"]["version"] == "v1"
        assert c.get("/apis/nope/v1").status_code == 404


def test_status_errors(k8s_api: K8sApi) -> None:
    with _client(k8s_api) as c:
        missing = c.get("/api/v1/namespaces/default/configmaps/none")
        assert missing.status_code == 404
        body = missing.json()
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
        assert c.post("/api/v1/namespaces/default/configmaps", json=_cm("a")).status_code == 201
        dup = c.post("/api/v1/namespaces/default/configmaps", json=_cm("a"))
        assert (dup.status_code, dup.json()["reason"]) == (409, "AlreadyExists")
        stale = _cm("a", data={"x": "1"})
        stale["metadata"]["resourceVersion"] = "1"
        conflict = c.put("/api/v1/namespaces/default/configmaps/a", json=stale)
        assert (conflict.status_code, conflict.json()["reason"]) == (409, "Conflict")
        invalid = c.post(
            "/apis/apps/v1/namespaces/default/deployments",
            json={
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {"replicas": "x"},
            },
        )
        assert (invalid.status_code, invalid.json()["reason"]) == (422, "Invalid")
        bad = c.get("/api/v1/pods?labelSelector=" + "!a in (b)")
        assert (bad.status_code, bad.json()["reason"]) == (400, "BadRequest")
        garbage = c.post(
            "/api/v1/namespaces/default/configmaps",
            content=b"{not json: [",
            headers={"content-type": "application/json"},
        )
        assert garbage.status_code == 400


def test_field_validation_modes(k8s_api: K8sApi) -> None:
    url = "/api/v1/namespaces/default/configmaps"
    with _client(k8s_api) as c:
        strict = c.post(url + "?fieldValidation=Strict", json=_cm("s", bogus=1))
        assert strict.status_code == 422
        assert "bogus" in strict.json()["message"]
        warn = c.post(url + "?fieldValidation=Warn", json=_cm("w", bogus=1))
        assert warn.status_code == 201
        assert "bogus" in warn.headers["warning"]
        ignore = c.post(url + "?fieldValidation=Ignore", json=_cm("i", bogus=1))
        assert ignore.status_code == 201
        assert "warning" not in ignore.headers


def test_table_output(k8s_api: K8sApi) -> None:
    with _client(k8s_api) as c:
        c.post(
            "/api/v1/namespaces/default/pods",
            json={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "a:1"}]},
            },
        )
        table = c.get("/api/v1/namespaces/default/pods", headers={"accept": TABLE}).json()
        assert table["kind"] == "Table"
        assert [col["name"] for col in table["columnDefinitions"]][:5] == [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
        ]
        assert table["rows"][0]["cells"][:3] == ["p", "0/1", "Pending"]
        accounts = c.get("/api/v1/namespaces/default/serviceaccounts", headers={"accept": TABLE}).json()
        assert [col["name"] for col in accounts["columnDefinitions"]] == ["Name", "Secrets", "Age"]


def test_openapi_documents(k8s_api: K8sApi) -> None:
    with _client(k8s_api) as c:
        root = c.get("/openapi/v3").json()["paths"]
        assert {"api/v1", "apis/apps/v1", "apis/authorization.k8s.io/v1"} <= set(root)
        url = root["apis/apps/v1"]["serverRelativeURL"]
        answer = c.get(url)
        assert answer.headers["cache-control"] == "public, immutable"
        doc = answer.json()
        patch_op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
        assert patch_op["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
        assert "fieldValidation" in {p["name"] for p in patch_op["parameters"]}
        patch_body = patch_op["requestBody"]["content"]["application/strategic-merge-patch+json"]["schema"]
        assert patch_body == {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
        schemas = doc["components"]["schemas"]
        deployment = schemas["io.k8s.api.apps.v1.Deployment"]
        assert deployment["x-kubernetes-group-version-kind"] == [
            {"group": "apps", "kind": "Deployment", "version": "v1"}
        ]
        assert deployment["properties"]["spec"]["allOf"] == [
            {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}
        ]
        containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
        assert (containers["type"], containers["x-kubernetes-patch-merge-key"]) == ("array", "name")
        refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
        assert refs <= set(schemas)  # every reference resolves in the document
        assert c.get(url.split("?")[0] + "?hash=stale", follow_redirects=False).headers["location"] == url
        again = c.get(url, headers={"if-none-match": answer.headers["etag"]})
        assert (again.status_code, again.content) == (304, b"")

        v2 = c.get("/openapi/v2", headers={"accept": "application/json"}).json()
        assert v2["swagger"] == "2.0"
        assert v2["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"] == {
            "$ref": "#/definitions/io.k8s.api.core.v1.PodSpec",
            "description": v2["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["description"],
        }
        protobuf = c.get(
            "/openapi/v2", headers={"accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
        )
        assert (
            protobuf.headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )
        assert protobuf.content.startswith(b"\n\x032.0")  # field 1, swagger: "2.0"
        assert c.get("/openapi/v2", headers={"accept": "text/html"}).status_code == 406


def test_limit_continue_and_field_selectors(k8s_api: K8sApi) -> None:
    with _client(k8s_api) as c:
        for i in range(5):
            c.post("/api/v1/namespaces/default/configmaps", json=_cm(f"c{i}"))
        page = c.get("/api/v1/namespaces/default/configmaps?limit=2").json()
        names = [i["metadata"]["name"] for i in page["items"]]
        while page["metadata"].get("continue") and len(names) < 10:
            page = c.get(
                "/api/v1/namespaces/default/configmaps",
                params={"limit": 2, "continue": page["metadata"]["continue"]},
            ).json()
            names += [i["metadata"]["name"] for i in page["items"]]
        assert names == [f"c{i}" for i in range(5)]
        only = c.get("/api/v1/configmaps?fieldSelector=metadata.name=c3,metadata.namespace=default").json()
        assert [i["metadata"]["name"] for i in only["items"]] == ["c3"]


def test_watch_stream_with_bookmark_and_timeout(k8s_api: K8sApi) -> None:
    with _client(k8s_api) as c:
        rv = c.get("/api/v1/namespaces/default/configmaps").json()["metadata"]["resourceVersion"]
        c.post("/api/v1/namespaces/default/configmaps", json=_cm("w1"))
        c.delete("/api/v1/namespaces/default/configmaps/w1")
        events = []
        params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
        with c.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as stream:
            for line in stream.iter_lines():
                if line:
                    events.append(json.loads(line))
        assert [e["type"] for e in events[:2]] == ["ADDED", "DELETED"]
        bad_rv = c.get(
            "/api/v1/namespaces/default/configmaps",
            params={"watch": "1", "resourceVersion": "abc", "timeoutSeconds": "1"},
        )
        assert bad_rv.status_code == 400


def test_scale_status_log_and_delete_propagation(k8s_api: K8sApi) -> None:
    base = "/apis/apps/v1/namespaces/default"
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    with _client(k8s_api) as c:
        created = c.post(f"{base}/deployments", json=dep).json()
        scale = c.patch(
            f"{base}/deployments/d/scale",
            json={"spec": {"replicas": 3}},
            headers={"content-type": "application/merge-patch+json"},
        ).json()
        assert scale["kind"] == "Scale"
        assert scale["spec"]["replicas"] == 3
        assert scale["status"]["selector"] == "a=b"
        status = c.patch(
            f"{base}/deployments/d/status",
            json={"status": {"observedGeneration": 2, "replicas": 3}},
            headers={"content-type": "application/merge-patch+json"},
        ).json()
        assert status["status"]["replicas"] == 3
        assert status["spec"]["replicas"] == 3
        owner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "d",
            "uid": created["metadata"]["uid"],
        }
        rs = {**dep, "kind": "ReplicaSet", "metadata": {"name": "d-1", "ownerReferences": [owner]}}
        assert c.post(f"{base}/replicasets", json=rs).status_code == 201
        c.post(
            "/api/v1/namespaces/default/pods",
            json={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "a:1"}]},
            },
        )
        assert c.get("/api/v1/namespaces/default/pods/p/log").status_code == 200
        gone = c.request("DELETE", f"{base}/deployments/d", json={"propagationPolicy": "Foreground"})
        assert gone.json()["status"] == "Success"
        assert c.get(f"{base}/replicasets/d-1").status_code == 404


def test_restart_keeps_objects_and_resource_version(
    k8s_api: K8sApi, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with _client(k8s_api) as c:
        c.post("/api/v1/namespaces/default/configmaps", json=_cm("kept", data={"a": "1"}))
        rv = int(c.get("/api/v1/namespaces/default/configmaps").json()["metadata"]["resourceVersion"])
    k8s_api.process.stop(grace=5)
    again = start_k8s_api(tmp_path_factory.mktemp("restart"), data_dir=k8s_api.data_dir)
    try:
        with _client(again) as c:
            assert c.get("/api/v1/namespaces/default/configmaps/kept").json()["data"] == {"a": "1"}
            new = c.post("/api/v1/namespaces/default/configmaps", json=_cm("next")).json()
            assert int(new["metadata"]["resourceVersion"]) > rv
    finally:
        again.process.stop(grace=5)


def test_hpa_served_at_v1_and_v2_from_one_storage(k8s_api: K8sApi) -> None:
    v1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
    v2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
    body = {
        "metadata": {"name": "h"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
            "targetCPUUtilizationPercentage": 70,
        },
    }
    with _client(k8s_api) as c:
        assert c.post(v1, json=body).status_code == 201
        stored = c.get(f"{v2}/h").json()
        assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
        patched = c.patch(
            f"{v1}/h",
            json={"spec": {"targetCPUUtilizationPercentage": 50}},
            headers={"content-type": "application/merge-patch+json"},
        )
        assert patched.status_code == 200
        assert "warning" not in patched.headers
        assert patched.json()["spec"]["targetCPUUtilizationPercentage"] == 50
        assert [i["apiVersion"] for i in c.get(v1).json()["items"]] == ["autoscaling/v1"]
        assert c.get("/apis/autoscaling").json()["preferredVersion"]["version"] == "v2"
        assert c.delete(f"{v1}/h").json()["status"] == "Success"
        assert c.get(f"{v2}/h").status_code == 404


def test_an_idle_keep_alive_connection_outlives_a_client_retry_interval(k8s_api: K8sApi) -> None:
    """kubectl retries (drain's evictions, waits) 5 s apart on one keep-alive connection: it must still be
    open, not reset as the client reuses it."""
    host, port = k8s_api.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/version")
        assert connection.getresponse().read()
        time.sleep(KUBECTL_RETRY_SECONDS + 1)
        connection.request("GET", "/version")
        answer = connection.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["gitVersion"] == "v1.30.0"
    finally:
        connection.close()
