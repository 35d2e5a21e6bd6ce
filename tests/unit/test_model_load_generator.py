"""The load generator in the model, the settings and the ad-hoc operations: one restricted pod of its
image sending its shoppers to frontend-proxy's Service, its web UI on 8089 behind a ClusterIP Service that
nothing in the cluster may call, its users from the `load_users` setting or the `infra.ops.load` override
(0: the web UI alone), and a change of them replacing its pod and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import OperationValueError

from infra.desired import load_users, model_config
from infra.model import ModelError, render
from infra.model.common import CHECKSUM_ANNOTATION, NAME_LABEL, SHOP_UID
from infra.model.load_generator import DEFAULT_USERS, MAX_USERS, WEB_PORT
from infra.model.render import IMAGE_NAMES
from infra.model.services import LOAD_GENERATOR
from infra.ops import load_users_value
from infra.settings import Settings, SettingsError
from tests.unit.model_configs import AWS, LOCAL, STAGES, find, render_with

WORKLOADS = ("Deployment", "StatefulSet")


def config_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = find(objects, "ConfigMap", f"{LOAD_GENERATOR}-config")["data"]
    return data


def pod_template(objects: list[dict[str, Any]]) -> dict[str, Any]:
    template: dict[str, Any] = find(objects, "Deployment", LOAD_GENERATOR)["spec"]["template"]
    return template


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_one_restricted_pod_of_its_image_sends_its_shoppers_to_frontend_proxy(stage: str) -> None:
    config = STAGES[stage]
    objects = render(config)
    deployment = find(objects, "Deployment", LOAD_GENERATOR)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "two never run at once"
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == config.images[LOAD_GENERATOR]
    assert container["ports"] == [{"name": "web", "containerPort": WEB_PORT, "protocol": "TCP"}]
    assert container["envFrom"] == [{"configMapRef": {"name": f"{LOAD_GENERATOR}-config"}}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "web"}
    assert container["securityContext"]["runAsUser"] == SHOP_UID
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsUser"] == SHOP_UID
    assert spec["serviceAccountName"] == LOAD_GENERATOR
    assert spec["automountServiceAccountToken"] is False
    assert find(objects, "ServiceAccount", LOAD_GENERATOR)["automountServiceAccountToken"] is False
    env = config_of(objects)
    assert env["LOCUST_HOST"] == "http://frontend-proxy:8080", "inside the cluster, not through the ALB"
    assert env["LOCUST_USERS"] == str(DEFAULT_USERS)
    assert env["LOCUST_AUTOSTART"] == "true"
    assert env["LOCUST_HEADLESS"] == "false"
    assert env["LOCUST_WEB_PORT"] == str(WEB_PORT)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["FLAGS_FILE"] == f"{mounts['flags']}/flags.json"
    assert {"name": "flags", "configMap": {"name": "flags"}} in spec["volumes"]
    assert mounts["tmp"] == "/tmp"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_its_web_ui_is_a_cluster_service_nobody_in_the_cluster_may_call_and_not_on_the_alb(
    stage: str,
) -> None:
    objects = render(STAGES[stage])
    service = find(objects, "Service", LOAD_GENERATOR)["spec"]
    assert service["type"] == "ClusterIP"
    assert service["selector"] == {NAME_LABEL: LOAD_GENERATOR}
    assert service["ports"] == [{"name": "web", "port": WEB_PORT, "targetPort": "web", "protocol": "TCP"}]
    policy = find(objects, "NetworkPolicy", f"allow-{LOAD_GENERATOR}")["spec"]
    assert policy == {
        "podSelector": {"matchLabels": {NAME_LABEL: LOAD_GENERATOR}},
        "policyTypes": ["Ingress"],
    }, "no ingress rule: only port-forward, which NetworkPolicies do not filter, reaches it"
    assert LOAD_GENERATOR not in json.dumps(find(objects, "Ingress", "shopstack"))
    template = pod_template(objects)
    assert "prometheus.io/scrape" not in template["metadata"]["annotations"], "Locust has no /metrics"


def test_its_users_come_from_the_model_config_and_zero_leaves_the_web_ui_idle() -> None:
    many = config_of(render_with(LOCAL, env={LOAD_GENERATOR: {"LOCUST_USERS": "40"}}))
    assert (many["LOCUST_USERS"], many["LOCUST_AUTOSTART"]) == ("40", "true")
    none = config_of(render_with(LOCAL, env={LOAD_GENERATOR: {"LOCUST_USERS": "0"}}))
    assert (none["LOCUST_USERS"], none["LOCUST_AUTOSTART"]) == ("0", "false")
    tuned = config_of(render_with(LOCAL, env={LOAD_GENERATOR: {"LOCUST_SPAWN_RATE": "5"}}))
    assert tuned["LOCUST_SPAWN_RATE"] == "5", "its env, as a service's, wins over the model's"


@pytest.mark.parametrize("value", ["-1", "many", str(MAX_USERS + 1)])
def test_a_bad_number_of_users_is_one_clear_error(value: str) -> None:
    with pytest.raises(
        ModelError, match=f"LOCUST_USERS of 'load-generator' must be a whole number from 0 to {MAX_USERS}"
    ):
        render_with(LOCAL, env={LOAD_GENERATOR: {"LOCUST_USERS": value}})


def test_its_image_is_required_and_pinned_by_digest() -> None:
    without = {k: v for k, v in LOCAL.images.items() if k != LOAD_GENERATOR}
    with pytest.raises(ModelError, match="no image for service 'load-generator'"):
        render_with(LOCAL, images=without)
    with pytest.raises(ModelError, match="'load-generator' is not pinned by digest"):
        render_with(LOCAL, images={**LOCAL.images, LOAD_GENERATOR: "shopstack/load-generator:latest"})
    with pytest.raises(ModelError, match="replicas for unknown service 'load-generator'"):
        render_with(LOCAL, replicas={LOAD_GENERATOR: 2})


def _templates(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] in WORKLOADS}


def test_a_change_of_users_replaces_its_pod_and_no_other() -> None:
    before = _templates(render(LOCAL))
    after = _templates(render_with(LOCAL, env={LOAD_GENERATOR: {"LOCUST_USERS": "9"}}))
    assert {name for name in before if before[name] != after[name]} == {LOAD_GENERATOR}
    old, new = (
        t["metadata"]["annotations"][CHECKSUM_ANNOTATION]
        for t in (before[LOAD_GENERATOR], after[LOAD_GENERATOR])
    )
    assert old != new


def test_the_flood_flag_reaches_it_through_the_flags_file_without_a_restart() -> None:
    objects = render_with(AWS, flags={"loadGeneratorFloodHomepage": 100})
    flags = json.loads(find(objects, "ConfigMap", "flags")["data"]["flags.json"])["flags"]
    assert flags["loadGeneratorFloodHomepage"]["variants"] == {"on": 100, "off": 0}
    assert flags["loadGeneratorFloodHomepage"]["defaultVariant"] == "on"
    assert pod_template(objects) == pod_template(render(AWS))


def settings(tmp_path: Path, **data: Any) -> Settings:
    build = tmp_path / "build"
    build.mkdir(exist_ok=True)
    digest = "sha256:" + "cd" * 32
    (build / "images.json").write_text(
        json.dumps({name: f"shopstack/{name}@{digest}" for name in IMAGE_NAMES})
    )
    return Settings.parse({"stage": "aws", "account_id": "123456789012", "build_dir": str(build), **data})


def test_the_setting_defaults_to_five_users_and_is_bounded(tmp_path: Path) -> None:
    assert settings(tmp_path).load_users == DEFAULT_USERS == 5
    assert settings(tmp_path, load_users=0).load_users == 0
    for bad in (-1, MAX_USERS + 1):
        with pytest.raises(SettingsError, match="load_users"):
            settings(tmp_path, load_users=bad)


def test_the_deploy_gives_the_model_the_setting_or_the_operations_override(tmp_path: Path) -> None:
    chosen = settings(tmp_path, load_users=7, service_env={LOAD_GENERATOR: {"LOCUST_SPAWN_RATE": "2"}})
    assert load_users(chosen, {}) == 7
    config = model_config(chosen, {})
    assert config.images[LOAD_GENERATOR].endswith(f"/shopstack/{LOAD_GENERATOR}@sha256:" + "cd" * 32)
    assert dict(config.env[LOAD_GENERATOR]) == {"LOCUST_USERS": "7", "LOCUST_SPAWN_RATE": "2"}
    overridden = model_config(chosen, {"load": {"users": 0}})
    assert config_of(render(overridden))["LOCUST_USERS"] == "0"
    assert config_of(render(overridden))["LOCUST_AUTOSTART"] == "false"


@pytest.mark.parametrize(("given", "users"), [("0", 0), ("12", 12), (" 3 ", 3), (MAX_USERS, MAX_USERS)])
def test_the_load_operation_takes_a_whole_number_of_users(given: str | int, users: int) -> None:
    assert load_users_value(given) == users


@pytest.mark.parametrize("given", ["-1", "2.5", "many", "", str(MAX_USERS + 1)])
def test_the_load_operation_refuses_anything_else_in_one_line(given: str) -> None:
    with pytest.raises(OperationValueError, match=f"users takes a whole number from 0 to {MAX_USERS}"):
        load_users_value(given)
