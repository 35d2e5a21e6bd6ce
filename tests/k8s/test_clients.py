"""The Python clients (`kubernetes`, lightkube) against the emulator: CRUD, watch, server-side apply."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from lightkube import ApiError as LightkubeApiError
from lightkube import Client as LightkubeClient
from lightkube import KubeConfig
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap

from tests.k8s.conftest import K8sApi

pytestmark = pytest.mark.timeout(60)


def _kubernetes(api: K8sApi) -> k8s_client.ApiClient:
    return k8s_config.new_client_from_config(str(api.kubeconfig))


def test_kubernetes_client_crud_and_errors(k8s_api: K8sApi) -> None:
    with _kubernetes(k8s_api) as api_client:
        assert k8s_client.VersionApi(api_client).get_code().git_version == "v1.30.0"
        core = k8s_client.CoreV1Api(api_client)
        created = core.create_namespaced_config_map(
            "default", {"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}}
        )
        assert created.metadata.uid
        assert [
            c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="x=1").items
        ] == ["a"]
        patched = core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}})
        assert patched.data == {"k": "w"}
        with pytest.raises(k8s_client.ApiException) as exc:
            core.replace_namespaced_config_map(
                "a",
                "default",
                {"metadata": {"name": "a", "resourceVersion": created.metadata.resource_version}},
            )
        assert exc.value.status == 409
        core.delete_namespaced_config_map("a", "default")
        with pytest.raises(k8s_client.ApiException) as exc:
            core.read_namespaced_config_map("a", "default")
        assert exc.value.status == 404
        assert json.loads(exc.value.body)["reason"] == "NotFound"
        sa = core.read_namespaced_service_account("default", "default")
        assert sa.metadata.name == "default"


def test_kubernetes_client_watch_and_apply(k8s_api: K8sApi) -> None:
    with _kubernetes(k8s_api) as api_client:
        core = k8s_client.CoreV1Api(api_client)
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        core.create_namespaced_config_map("default", {"metadata": {"name": "w"}})
        core.delete_namespaced_config_map("w", "default")
        seen = []
        stream = k8s_watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
        )
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
        assert seen == [("ADDED", "w"), ("DELETED", "w")]
        apps = k8s_client.AppsV1Api(api_client)
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:1"}]},
                },
            },
        }
        applied = apps.patch_namespaced_deployment(
            "web", "default", body, field_manager="deployer", _content_type="application/apply-patch+yaml"
        )
        assert applied.spec.replicas == 2
        assert applied.metadata.managed_fields[0].manager == "deployer"
        body["spec"]["replicas"] = 3
        with pytest.raises(k8s_client.ApiException) as exc:
            apps.patch_namespaced_deployment(
                "web", "default", body, field_manager="intruder", _content_type="application/apply-patch+yaml"
            )
        assert exc.value.status == 409


def test_lightkube_crud_watch_and_apply(k8s_api: K8sApi) -> None:
    lk = LightkubeClient(KubeConfig.from_file(str(k8s_api.kubeconfig)), field_manager="lightkube-test")
    try:
        lk.create(ConfigMap(metadata=ObjectMeta(name="lk", namespace="default"), data={"a": "1"}))
        assert lk.get(ConfigMap, "lk", namespace="default").data == {"a": "1"}
        applied = lk.apply(ConfigMap(metadata=ObjectMeta(name="lk2", namespace="default"), data={"b": "2"}))
        assert applied.metadata.managedFields[0].manager == "lightkube-test"
        names = [c.metadata.name for c in lk.list(ConfigMap, namespace="default")]
        assert {"lk", "lk2"} <= set(names)
        dep = Deployment(
            metadata=ObjectMeta(name="web", namespace="default"),
            spec=DeploymentSpec(
                replicas=1,
                selector=LabelSelector(matchLabels={"app": "web"}),
                template=PodTemplateSpec(
                    metadata=ObjectMeta(labels={"app": "web"}),
                    spec=PodSpec(containers=[Container(name="web", image="web:1")]),
                ),
            ),
        )
        lk.apply(dep)
        scale = lk.get(Deployment.Scale, "web", namespace="default")
        assert scale.spec.replicas == 1
        lk.delete(ConfigMap, "lk2", namespace="default")
        watched = []
        for op, obj in lk.watch(
            ConfigMap, namespace="default", resource_version=applied.metadata.resourceVersion
        ):
            watched.append((op, obj.metadata.name))
            if op == "DELETED" or len(watched) > 5:
                break
        assert watched[-1] == ("DELETED", "lk2")
        with pytest.raises(LightkubeApiError) as exc:
            lk.get(ConfigMap, "lk2", namespace="default")
        assert exc.value.status.code == 404
    finally:
        lk.close()
