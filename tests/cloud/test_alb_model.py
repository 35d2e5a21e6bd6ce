"""The ALB controller's model and the data plane's routing, with no processes: annotations, rules from
Ingress paths, group merging, targets from EndpointSlices, and rule matching as ALB does it."""

from __future__ import annotations

from typing import Any

import pytest

from sim.alb.dataplane import Exchange, forwarded_headers
from sim.alb.model import (
    AnnotationError,
    Backend,
    HealthCheck,
    health_check,
    is_alb,
    listen_ports,
    load_balancer_name,
    path_patterns,
    plan,
)
from sim.alb.routing import (
    HealthSettings,
    LoadBalancer,
    Request,
    Rule,
    Snapshot,
    route,
)

P = "alb.ingress.kubernetes.io/"


def ingress(name: str, paths: list[tuple[str, str, str]], host: str | None = None, **notes: str) -> Any:
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": kind,
                    "backend": {"service": {"name": svc, "port": {"number": 80}}},
                }
                for path, kind, svc in paths
            ]
        }
    }
    if host:
        rule["host"] = host
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": name,
            "annotations": {P + k.replace("_", "-").replace("--", "."): v for k, v in notes.items()},
        },
        "spec": {"ingressClassName": "alb", "rules": [rule]},
    }


def service(name: str) -> Any:
    return {
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}], "selector": {"app": name}},
    }


def pod(name: str, ready: bool = True, deleting: bool = False) -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": "shop"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def endpoint_slice(svc: str, *endpoints: tuple[str, str, bool, bool]) -> Any:
    return {
        "metadata": {"name": f"{svc}-x", "namespace": "shop", "labels": {"kubernetes.io/service-name": svc}},
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
                "targetRef": {"kind": "Pod", "name": pod_name, "namespace": "shop"},
            }
            for pod_name, ip, ready, terminating in endpoints
        ],
    }


def test_only_alb_class_ingresses_are_taken() -> None:
    ours = ingress("a", [])
    legacy = {"metadata": {"annotations": {"kubernetes.io/ingress.class": "alb"}}, "spec": {}}
    other = {"metadata": {}, "spec": {"ingressClassName": "nginx"}}
    by_class = {"metadata": {}, "spec": {"ingressClassName": "aws"}}
    aws_class = {"metadata": {"name": "aws"}, "spec": {"controller": "ingress.k8s.aws/alb"}}
    assert is_alb(ours)
    assert is_alb(legacy)
    assert not is_alb(other)
    assert not is_alb(by_class)
    assert is_alb(by_class, [aws_class])


def test_listen_ports_parse_json_and_refuse_nonsense() -> None:
    assert listen_ports(ingress("a", [])) == (("HTTP", 80),)
    assert listen_ports(ingress("a", [], listen_ports='[{"HTTP": 8081}, {"HTTP": 80}]')) == (
        ("HTTP", 80),
        ("HTTP", 8081),
    )
    for bad in ("80", '[{"HTTPS": 443}]', "[]", '[{"HTTP": 70000}]'):
        with pytest.raises(AnnotationError):
            listen_ports(ingress("a", [], listen_ports=bad))


def test_ingress_paths_become_ordered_rules_with_host_and_path_conditions() -> None:
    ing = ingress(
        "web",
        [("/api", "Prefix", "api"), ("/healthz", "Exact", "api"), ("/", "Prefix", "web")],
        host="shop.example.com",
        scheme="internet-facing",
        healthcheck_path="/readyz",
    )
    result = plan("shop", [ing], [service("api"), service("web")], [], [])
    (lb,) = result.load_balancers
    assert lb.scheme == "internet-facing"
    assert lb.stack == "shop/web"
    assert lb.name == load_balancer_name("shop", "shop/web", "internet-facing")
    assert len(lb.name) <= 32
    (listener,) = lb.listeners
    assert (listener.protocol, listener.port, listener.default) == ("HTTP", 80, None)
    assert [r.priority for r in listener.rules] == [1, 2, 3]
    assert listener.rules[0].api_conditions() == [
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["shop.example.com"]}},
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api", "/api/*"]}},
    ]
    assert listener.rules[1].conditions[1] == ("path-pattern", ("/healthz",))
    assert listener.rules[2].conditions[1] == ("path-pattern", ("/*",))
    assert [r.backend.service for r in listener.rules] == ["api", "api", "web"]
    assert {g.backend.service for g in lb.target_groups} == {"api", "web"}
    assert all(g.health == HealthCheck(path="/readyz") for g in lb.target_groups)
    assert all(len(g.name) <= 32 for g in lb.target_groups)
    assert not result.warnings


def test_health_check_settings_come_from_ingress_then_service_annotations() -> None:
    ing = ingress("web", [], healthcheck_path="/a", healthcheck_interval_seconds="5")
    svc = {"metadata": {"annotations": {P + "healthcheck-path": "/b", P + "success-codes": "200-299"}}}
    assert health_check(ing) == HealthCheck(path="/a", interval_seconds=5, timeout_seconds=4)
    assert health_check(ing, svc) == HealthCheck("/b", 5, 4, success_codes="200-299")
    for bad in (
        {"healthcheck_path": "a"},
        {"healthcheck_timeout_seconds": "15"},
        {"healthy_threshold_count": "x"},
    ):
        with pytest.raises(AnnotationError):
            health_check(ingress("web", [], **bad))


def test_path_patterns_follow_path_types() -> None:
    assert path_patterns("/a/", "Prefix") == ("/a", "/a/*")
    assert path_patterns("/", "Prefix") == ("/*",)
    assert path_patterns("/a", "Exact") == ("/a",)
    assert path_patterns("/a*", "ImplementationSpecific") == ("/a*",)
    assert path_patterns(None, "Prefix") == ("/*",)


def test_a_group_shares_one_load_balancer_and_merges_rules_by_order() -> None:
    late = ingress("late", [("/b", "Exact", "web")], group__name="shop", group__order="10")
    early = ingress("early", [("/a", "Exact", "api")], group__name="shop", group__order="-5")
    alone = ingress("alone", [("/c", "Exact", "web")])
    result = plan("shop", [late, alone, early], [service("api"), service("web")], [], [])
    by_stack = {lb.stack: lb for lb in result.load_balancers}
    assert set(by_stack) == {"shop", "shop/alone"}
    group = by_stack["shop"]
    assert group.members == (("shop", "early"), ("shop", "late"))
    assert [r.conditions[-1][1] for r in group.listeners[0].rules] == [("/a",), ("/b",)]
    assert group.name.startswith("k8s-shop-")


def test_targets_are_ready_endpoints_of_pods_not_being_deleted() -> None:
    ing = ingress("web", [("/", "Prefix", "web")])
    slices = [
        endpoint_slice(
            "web",
            ("ready", "127.131.0.2", True, False),
            ("unready", "127.131.0.3", False, False),
            ("terminating", "127.131.0.4", False, True),
            ("marked", "127.131.0.5", True, False),  # the slice has not caught up with the deletion
        )
    ]
    pods = [
        pod("ready"),
        pod("unready", ready=False),
        pod("terminating", deleting=True),
        pod("marked", deleting=True),
    ]
    (lb,) = plan("shop", [ing], [service("web")], slices, pods).load_balancers
    (group,) = lb.target_groups
    assert group.port == 8080
    assert group.targets == frozenset({("127.131.0.2", 8080)})
    assert group.backend == Backend("shop", "web", 80)


def test_warnings_for_instance_targets_bad_annotations_and_missing_services() -> None:
    instance = ingress("inst", [("/", "Prefix", "web")], target_type="instance")
    bad = ingress("bad", [("/", "Prefix", "web")], scheme="public")
    missing = ingress("missing", [("/", "Prefix", "nope")])
    result = plan("shop", [instance, bad, missing], [service("web")], [], [])
    reasons = {(name, reason) for _, name, reason, _ in result.warnings}
    assert reasons == {
        ("inst", "UnsupportedTargetType"),
        ("bad", "FailedBuildModel"),
        ("missing", "FailedBuildModel"),
    }
    assert {lb.stack for lb in result.load_balancers} == {"shop/inst", "shop/missing"}
    assert result.refused == {"shop/bad"}  # its ALB, if any, is kept as it is
    assert next(lb for lb in result.load_balancers if lb.stack == "shop/inst").target_groups


def test_deleted_ingresses_leave_their_stack_or_delete_it() -> None:
    gone = ingress("gone", [("/", "Prefix", "web")])
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    leaving = ingress("leaving", [("/a", "Exact", "web")], group__name="g")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    staying = ingress("staying", [("/b", "Exact", "web")], group__name="g")
    result = plan("shop", [gone, leaving, staying], [service("web")], [], [])
    assert result.deleted_stacks() == {"shop/gone"}
    assert result.leaving == {"shop/gone": [("shop", "gone")], "g": [("shop", "leaving")]}
    (lb,) = result.load_balancers
    assert lb.members == (("shop", "staying"),)


# -- the data plane's routing


def _rule(priority: int, *conditions: tuple[str, list[str]], default: bool = False) -> Rule:
    keys = {"path-pattern": "PathPatternConfig", "host-header": "HostHeaderConfig"}
    return Rule(
        priority,
        tuple({"Field": f, keys[f]: {"Values": v}} for f, v in conditions),
        ({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": str(priority)}},),
        default,
    )


def _request(path: str, host: str = "x") -> Request:
    return Request("GET", host, path, "", [])


def test_rules_match_by_priority_path_and_host_patterns() -> None:
    rules = (
        _rule(1, ("host-header", ["*.example.com"]), ("path-pattern", ["/api/*"])),
        _rule(2, ("path-pattern", ["/api", "/api/*"])),
        _rule(3, ("path-pattern", ["/item/?"])),
        _rule(1 << 31, default=True),
    )
    lb = LoadBalancer("arn:aws:x:loadbalancer/app/a/1", "a", "a.elb", "1", {80: rules})
    snapshot = Snapshot((lb,), {})

    def priority(request: Request, port: int = 80) -> int | None:
        found = route(snapshot, port, request)
        return None if found is None else found[1].priority

    assert priority(_request("/api/x", "Shop.Example.com")) == 1
    assert priority(_request("/api/x", "other")) == 2
    assert priority(_request("/api")) == 2
    assert priority(_request("/API")) == 1 << 31  # paths are case-sensitive
    assert priority(_request("/item/7")) == 3
    assert priority(_request("/item/77")) == 1 << 31
    assert priority(_request("/"), port=81) is None
    assert lb.log_id == "app/a/1"


def test_several_albs_on_one_port_route_by_dns_name_then_rules() -> None:
    a = LoadBalancer(
        "arn:a", "a", "a.elb", "1", {80: (_rule(1, ("path-pattern", ["/a"])), _rule(9, default=True))}
    )
    b = LoadBalancer(
        "arn:b", "b", "b.elb", "2", {80: (_rule(1, ("path-pattern", ["/b"])), _rule(8, default=True))}
    )
    snapshot = Snapshot((a, b), {})
    assert route(snapshot, 80, _request("/b"))[0].name == "b"  # type: ignore[index]
    assert route(snapshot, 80, _request("/a", "b.elb"))[1].priority == 8  # type: ignore[index]
    assert route(snapshot, 80, _request("/zzz"))[1].priority == 9  # type: ignore[index]


def test_health_matchers_take_lists_and_ranges() -> None:
    assert HealthSettings(matcher="200").success(200)
    assert not HealthSettings(matcher="200").success(204)
    assert HealthSettings(matcher="200-299,302").success(204)
    assert HealthSettings(matcher="200-299,302").success(302)
    assert not HealthSettings(matcher="200-299,302").success(404)


def test_forwarded_headers_append_the_client_and_drop_hop_by_hop_ones() -> None:
    scope = {"client": ("127.0.0.9", 5000), "headers": []}
    exchange = Exchange(scope, 80)
    headers = [
        ("host", "shop"),
        ("connection", "keep-alive"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-proto", "https"),
        ("content-length", "3"),
    ]
    out = dict(forwarded_headers(scope, headers, exchange, keep_length=False))
    assert out == {
        "host": "shop",
        "x-forwarded-for": "10.0.0.1, 127.0.0.9",
        "x-forwarded-proto": "http",
        "x-forwarded-port": "80",
        "x-amzn-trace-id": exchange.trace_id,
    }
    assert dict(forwarded_headers(scope, headers, exchange, keep_length=True))["content-length"] == "3"
