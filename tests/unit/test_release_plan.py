"""Blue-green releases as the deploy plans them (`infra.k8s.release`) and the model renders them: what is
released, what each of the three applies holds, and that nothing changes when nothing is released."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from infra.k8s.facts import object_key
from infra.k8s.release import plan_releases, plan_rollback
from infra.model import SERVICE_NAMES, ModelConfig, render
from tests.unit.model_configs import DIGEST, LOCAL, find

NEW = "sha256:" + "cd" * 32


def live_of(config: ModelConfig) -> dict[str, dict[str, Any]]:
    """The cluster as a deploy of `config` left it (what `LiveObjects` would read)."""
    return {object_key(o): o for o in render(config)}


def with_image(config: ModelConfig, service: str, digest: str) -> ModelConfig:
    repository = config.images[service].split("@")[0]
    return replace(config, images={**config.images, service: f"{repository}@{digest}"})


def phases(config: ModelConfig, live: dict[str, dict[str, Any]]) -> list[list[dict[str, Any]]]:
    plan = plan_releases(config, live)
    return [
        render(replace(config, releases=releases)) for releases in (plan.staged, plan.switched, plan.final)
    ]


def image_of(objects: list[dict[str, Any]], name: str) -> str:
    return str(find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"])


def selector_of(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    return dict(find(objects, "Service", name)["spec"]["selector"])


def weights(objects: list[dict[str, Any]]) -> dict[str, int]:
    ingress = find(objects, "Ingress", "shopstack")
    action = json.loads(
        ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.frontend-proxy"]
    )
    return {group["serviceName"]: group["weight"] for group in action["forwardConfig"]["targetGroups"]}


def test_a_first_deploy_and_a_second_with_the_same_images_release_nothing() -> None:
    assert plan_releases(LOCAL, {}).moves == ()
    live = live_of(LOCAL)
    plan = plan_releases(LOCAL, live)
    assert plan.moves == ()
    staged, switched, final = phases(LOCAL, live)
    assert staged == switched == final == render(LOCAL)


def test_a_new_image_stages_the_idle_colour_then_switches_then_retires_the_old() -> None:
    live = live_of(LOCAL)
    wanted = with_image(LOCAL, "frontend-proxy", NEW)
    (move,) = plan_releases(wanted, live).moves
    assert (move.service, move.old, move.new) == ("frontend-proxy", "blue", "green")
    staged, switched, final = phases(wanted, live)

    # staged: green runs the new image with blue's replicas; traffic, HPA and weights stay on blue
    assert NEW in image_of(staged, "frontend-proxy-green")
    assert DIGEST in image_of(staged, "frontend-proxy-blue")
    assert find(staged, "Deployment", "frontend-proxy-green")["spec"]["replicas"] == 2
    assert selector_of(staged, "frontend-proxy")["shopstack.io/colour"] == "blue"
    assert weights(staged) == {"frontend-proxy-blue": 100, "frontend-proxy-green": 0}
    hpa = find(staged, "HorizontalPodAutoscaler", "frontend-proxy")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "frontend-proxy-blue"

    # switched: the stable Service, the ALB's weights and the HPA on green; blue still up
    assert selector_of(switched, "frontend-proxy")["shopstack.io/colour"] == "green"
    assert weights(switched) == {"frontend-proxy-blue": 0, "frontend-proxy-green": 100}
    assert find(switched, "HorizontalPodAutoscaler", "frontend-proxy")["spec"]["scaleTargetRef"]["name"] == (
        "frontend-proxy-green"
    )
    assert find(switched, "Deployment", "frontend-proxy-blue")["spec"]["replicas"] == 2

    # final: blue at zero, still holding the old run for a rollback
    assert find(final, "Deployment", "frontend-proxy-blue")["spec"]["replicas"] == 0
    assert DIGEST in image_of(final, "frontend-proxy-blue")

    # and only frontend-proxy moved: every other object is the same in all three
    others = [
        o for o in render(wanted) if o["metadata"]["labels"].get("app.kubernetes.io/name") != "frontend-proxy"
    ]
    for phase in (staged, switched, final):
        for obj in others:
            if obj["kind"] != "Ingress":
                assert obj in phase


def test_after_a_release_the_same_images_change_nothing_and_the_next_release_goes_back_to_blue() -> None:
    wanted = with_image(LOCAL, "cart", NEW)
    final = phases(wanted, live_of(LOCAL))[2]
    after = {object_key(o): o for o in final}
    assert plan_releases(wanted, after).moves == ()
    assert phases(wanted, after) == [final, final, final]
    (move,) = plan_releases(with_image(wanted, "cart", "sha256:" + "ef" * 32), after).moves
    assert (move.old, move.new) == ("green", "blue")


def test_a_configuration_change_is_released_too() -> None:
    (move,) = plan_releases(replace(LOCAL, carts_table="shopstack-carts-2"), live_of(LOCAL)).moves
    assert move.service == "cart"


def config_of(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The environment a Deployment's pods start with: the data of the ConfigMap it names."""
    container = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    (source,) = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    return dict(find(objects, "ConfigMap", source)["data"])


def test_each_colour_starts_its_pods_with_its_own_environment_through_a_release() -> None:
    # a pod the live colour starts while a release is under way (scaled up, replaced), or after one
    # failed, gets the live colour's environment, never the new colour's
    wanted = replace(LOCAL, env={"cart": {"CART_TABLE": "no-such-table"}})
    staged, switched, final = phases(wanted, live_of(LOCAL))
    for objects in (staged, switched, final):
        assert config_of(objects, "cart-blue")["CART_TABLE"] == LOCAL.carts_table
        assert config_of(objects, "cart-green")["CART_TABLE"] == "no-such-table"
    assert config_of(staged, "cart-blue") == config_of(render(LOCAL), "cart-blue")
    # the next deploy reads each colour's environment back: the old colour is what a rollback brings back
    after = {object_key(o): o for o in final}
    plan = plan_rollback(wanted, after, "cart")
    assert dict(plan.moves[0].run.env)["CART_TABLE"] == LOCAL.carts_table
    assert plan_releases(wanted, after).moves == ()


def test_a_rolled_back_image_is_not_released_again() -> None:
    wanted = with_image(LOCAL, "cart", NEW)
    assert plan_releases(wanted, live_of(LOCAL), pinned={"cart": wanted.images["cart"]}).moves == ()


def test_a_rollback_releases_what_the_idle_colour_holds() -> None:
    wanted = with_image(LOCAL, "cart", NEW)
    after = {object_key(o): o for o in phases(wanted, live_of(LOCAL))[2]}
    plan = plan_rollback(wanted, after, "cart")
    (move,) = plan.moves
    assert (move.old, move.new, move.run.image) == ("green", "blue", LOCAL.images["cart"])
    with pytest.raises(ValueError, match="no previous release"):
        plan_rollback(LOCAL, live_of(LOCAL), "cart")


def test_a_rolling_service_has_one_deployment_and_is_never_planned() -> None:
    config = replace(LOCAL, strategies={"payment": "rolling"})
    objects = render(config)
    assert find(objects, "Deployment", "payment")["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "payment"
    }
    assert not [o for o in objects if o["metadata"]["name"] in ("payment-blue", "payment-green")]
    assert all(
        m.service != "payment"
        for m in plan_releases(with_image(config, "payment", NEW), live_of(config)).moves
    )


def test_a_rolling_service_becomes_blue_green_with_its_rolling_pods_serving_until_the_switch() -> None:
    rolling = replace(LOCAL, strategies={"checkout": "rolling"})
    live = live_of(rolling)
    plan = plan_releases(LOCAL, live)
    (move,) = plan.moves
    assert (move.service, move.old, move.new, move.old_name) == ("checkout", None, "blue", "checkout")
    current, staged, switched, final = (
        render(replace(LOCAL, releases=releases))
        for releases in (plan.current, plan.staged, plan.switched, plan.final)
    )
    for objects in (current, staged):  # the blue colour comes up; the Service selects it and the rolling pods
        assert selector_of(objects, "checkout") == {"app.kubernetes.io/name": "checkout"}
        assert find(objects, "Deployment", "checkout-blue")["spec"]["replicas"] >= 1
    for objects in (switched, final):
        assert selector_of(objects, "checkout")["shopstack.io/colour"] == "blue"
    assert final == render(LOCAL)
    # and back: a blue-green service becoming rolling is selected whole at once (its colours' pods and the
    # rolling ones), with no release
    assert plan_releases(rolling, live_of(LOCAL)).moves == ()
    assert selector_of(render(rolling), "checkout") == {"app.kubernetes.io/name": "checkout"}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_service_is_blue_green_by_default(service: str) -> None:
    objects = render(LOCAL)
    assert selector_of(objects, service)["shopstack.io/colour"] == "blue"
    for colour in ("blue", "green"):
        assert selector_of(objects, f"{service}-{colour}")["shopstack.io/colour"] == colour
