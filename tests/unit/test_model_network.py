"""NetworkPolicies as a cluster would enforce them: for every pair of components (and a client outside
the cluster), a connection is admitted exactly when the caller graph says so, and Prometheus reaches
every metrics port. The ALB's view of the Ingress is checked with the local ALB controller's own model."""

from __future__ import annotations

from typing import Any

import pytest

from infra.model import ANYWHERE, CALLERS, SERVICE_NAMES, render
from infra.model.common import NAME_LABEL
from infra.model.network import METRICS_PORTS, SERVED_PORTS
from sim.alb import model as alb
from tests.unit.model_configs import AWS, LOCAL, STAGES, find

OUTSIDE = "outside-the-namespace"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def admitted(policies: list[dict[str, Any]], source: str, target: str, port: int) -> bool:
    """Whether `source`'s pods may connect to `target`'s pods on `port`, as NetworkPolicy semantics say."""
    target_labels = {NAME_LABEL: target}
    source_labels = {NAME_LABEL: source} if source != OUTSIDE else None
    selecting = [p for p in policies if _selects(p["spec"]["podSelector"], target_labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports is not None and port not in {p["port"] for p in ports}:
                continue
            peers = rule.get("from")
            if peers is None:
                return True
            for peer in peers:
                assert set(peer) == {"podSelector"}, "only same-namespace pod selectors are rendered"
                if source_labels is not None and _selects(peer["podSelector"], source_labels):
                    return True
    return False


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_component_admits_exactly_its_callers_and_prometheus(stage: str) -> None:
    policies = [o for o in render(STAGES[stage]) if o["kind"] == "NetworkPolicy"]
    sources = [*CALLERS, OUTSIDE]
    for target, callers in CALLERS.items():
        for port in SERVED_PORTS[target]:
            allowed = {s for s in sources if admitted(policies, s, target, port)}
            expected = set(sources) if ANYWHERE in callers else set(callers)
            if METRICS_PORTS.get(target) == port:
                expected.add("prometheus")
            assert allowed == expected, f"{target}:{port}"
        if target in METRICS_PORTS:
            assert admitted(policies, "prometheus", target, METRICS_PORTS[target])
            assert not admitted(policies, OUTSIDE, target, 9999) or ANYWHERE in callers


def test_the_caller_graph_is_architectures_talks_to_inverted() -> None:
    assert CALLERS["payment"] == {"checkout"}
    assert CALLERS["cart"] == {"frontend", "checkout"}
    assert CALLERS["product-catalog"] == {"frontend", "recommendation", "checkout"}
    assert CALLERS["kafka"] == {"checkout", "accounting", "fraud-detection"}
    assert CALLERS["otel-collector"] == set(SERVICE_NAMES)
    assert CALLERS["frontend-proxy"] == {ANYWHERE}


def test_a_pod_no_policy_names_is_still_denied() -> None:
    policies = [o for o in render(LOCAL) if o["kind"] == "NetworkPolicy"]
    assert not admitted(policies, "frontend", "some-new-component", 8080)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_alb_weighs_frontend_proxy_colours_checks_readiness_and_blocks_internal_paths(stage: str) -> None:
    objects = render(STAGES[stage])
    ingress, ingress_class = find(objects, "Ingress", "shopstack"), find(objects, "IngressClass", "alb")
    services = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].startswith("frontend-proxy")
    ]
    slices = [
        {
            "metadata": {
                "namespace": "shopstack",
                "labels": {alb.SERVICE_NAME_LABEL: f"frontend-proxy-{colour}"},
            },
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        }
        for colour, address in (("blue", "127.0.1.5"), ("green", "127.0.1.6"))
    ]
    plan = alb.plan("shopstack", [ingress], services, slices, [], [ingress_class])
    assert not plan.warnings
    (balancer,) = plan.load_balancers
    assert balancer.scheme == "internet-facing"
    assert [(listener.protocol, listener.port) for listener in balancer.listeners] == [("HTTP", 80)]
    groups = {group.backend.service: group for group in balancer.target_groups}
    assert set(groups) == {"frontend-proxy-blue", "frontend-proxy-green"}
    for group in groups.values():
        assert group.health.path == "/readyz"
        assert dict(group.attributes) == {
            "deregistration_delay.timeout_seconds": str(STAGES[stage].deregistration_delay_seconds)
        }
    assert groups["frontend-proxy-blue"].targets == {("127.0.1.5", 8080)}
    (listener,) = balancer.listeners
    actions = [rule.action for rule in listener.rules]
    forward = next(a for a in actions if a.type == "forward")
    assert {backend.service: weight for backend, weight in forward.groups} == {
        "frontend-proxy-blue": 100,
        "frontend-proxy-green": 0,
    }
    blocked = next(rule for rule in listener.rules if rule.action.type == "fixed-response")
    assert ("path-pattern", ("/drain",)) in blocked.conditions
    assert dict(blocked.action.config)["StatusCode"] == "404"
    assert ingress_class["spec"]["controller"] == alb.CLASS_CONTROLLER


def test_aws_and_local_render_the_same_ingress() -> None:
    local, aws = find(render(LOCAL), "Ingress", "shopstack"), find(render(AWS), "Ingress", "shopstack")
    assert local == aws
