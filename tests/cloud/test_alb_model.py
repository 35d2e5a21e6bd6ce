"""The ALB controller's model and the data plane's routing, with no processes: annotations, rules from
Ingress paths, group merging, targets from EndpointSlices, action annotations (weighted forwards),
health checks and target group attributes, readiness gates (which pods get them, what their conditions
say, how the kubelet counts them), rule matching and weighted picks as ALB does them."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from sim.alb.dataplane import Exchange, forwarded_headers
from sim.alb.model import (
    NOT_FOUND_ACTION,
    AnnotationError,
    Backend,
    HealthCheck,
    health_check,
    is_alb,
    listen_ports,
    load_balancer_name,
    path_patterns,
    plan,
    target_group_attributes,
)
from sim.alb.readiness import BINDING_DELETED, GateCondition, gate_conditions, gates_for
from sim.alb.routing import (
    HealthSettings,
    LoadBalancer,
    Request,
    Rule,
    Snapshot,
    WeightedRoundRobin,
    route,
)
from sim.kubelet.status import ContainerStatus, ready_condition

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
    assert (listener.protocol, listener.port, listener.default) == ("HTTP", 80, NOT_FOUND_ACTION)
    assert [r.priority for r in listener.rules] == [1, 2, 3]
    assert listener.rules[0].api_conditions() == [
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["shop.example.com"]}},
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api", "/api/*"]}},
    ]
    assert listener.rules[1].conditions[1] == ("path-pattern", ("/healthz",))
    assert listener.rules[2].conditions[1] == ("path-pattern", ("/*",))
    assert [r.action.backends[0].service for r in listener.rules] == ["api", "api", "web"]
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


# -- action annotations, health checks, target group attributes


def annotated(**actions: str) -> Any:
    """An Ingress whose paths `/<name>` each take action `<name>` by annotation (`use-annotation`)."""
    ing = ingress("web", [(f"/{name}", "Exact", name) for name in actions])
    for path in ing["spec"]["rules"][0]["http"]["paths"]:
        path["backend"]["service"]["port"] = {"name": "use-annotation"}
    ing["metadata"]["annotations"].update({f"{P}actions.{name}": raw for name, raw in actions.items()})
    return ing


def weighted(blue: int, green: int) -> str:
    groups = [
        {"serviceName": "web-blue", "servicePort": "80", "weight": blue},  # a numeric string is a number
        {"serviceName": "web-green", "servicePort": 80, "weight": green},
    ]
    return json.dumps({"type": "forward", "forwardConfig": {"targetGroups": groups}})


COLOURS = [service("web-blue"), service("web-green")]


def test_a_weighted_forward_action_forwards_to_one_target_group_per_service() -> None:
    (lb,) = plan("shop", [annotated(web=weighted(100, 0))], COLOURS, [], []).load_balancers
    blue, green = Backend("shop", "web-blue", 80), Backend("shop", "web-green", 80)
    assert [g.backend for g in sorted(lb.target_groups, key=lambda g: g.backend.service)] == [blue, green]
    (rule,) = lb.listeners[0].rules
    arns = {blue: "arn:blue", green: "arn:green"}
    assert rule.action.api(arns) == {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": "arn:blue", "Weight": 100},
                {"TargetGroupArn": "arn:green", "Weight": 0},
            ],
            "TargetGroupStickinessConfig": {"Enabled": False},
        },
    }
    # a switch moves only the weights: the same target groups, so no target is registered anew
    (switched,) = plan("shop", [annotated(web=weighted(0, 100))], COLOURS, [], []).load_balancers
    assert switched.target_groups == lb.target_groups
    assert [
        g["Weight"] for g in switched.listeners[0].rules[0].action.api(arns)["ForwardConfig"]["TargetGroups"]
    ] == [0, 100]


def test_fixed_response_redirect_and_target_group_arn_actions() -> None:
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/outside/1"
    ing = annotated(
        down=json.dumps(
            {"type": "fixed-response", "fixedResponseConfig": {"statusCode": "503", "messageBody": "x"}}
        ),
        moved=json.dumps(
            {"type": "redirect", "redirectConfig": {"protocol": "HTTPS", "statusCode": "HTTP_301"}}
        ),
        outside=json.dumps({"type": "forward", "targetGroupARN": arn}),
    )
    result = plan("shop", [ing], [], [], [])
    assert not result.warnings
    (lb,) = result.load_balancers
    assert lb.target_groups == ()
    assert [r.action.api({}) for r in lb.listeners[0].rules] == [
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "MessageBody": "x"}},
        {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "StatusCode": "HTTP_301"}},
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": arn, "Weight": 1}],
                "TargetGroupStickinessConfig": {"Enabled": False},
            },
        },
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"type": "forward"}',
        '{"type": "teleport"}',
        '{"type": "fixed-response", "fixedResponseConfig": {}}',
        json.dumps(
            {"type": "forward", "forwardConfig": {"targetGroups": [{"serviceName": "web-blue", "weight": 5}]}}
        ),
        json.dumps(
            {
                "type": "forward",
                "forwardConfig": {"targetGroups": [{"serviceName": "a", "servicePort": 80, "weight": -1}]},
            }
        ),
        json.dumps(
            {
                "type": "forward",
                "forwardConfig": {
                    "targetGroups": [{"serviceName": "a", "servicePort": 80}],
                    "targetGroupStickinessConfig": {"enabled": True},
                },
            }
        ),
    ],
)
def test_a_malformed_action_refuses_its_whole_group_naming_the_annotation(raw: str) -> None:
    bad = annotated(web=raw)
    bad["metadata"]["annotations"][P + "group.name"] = "shop"
    good = ingress("other", [("/x", "Exact", "web-blue")], group__name="shop")
    result = plan("shop", [bad, good], COLOURS, [], [])
    ((namespace, name, reason, message),) = result.warnings
    assert (namespace, name, reason) == ("shop", "web", "FailedBuildModel")
    assert message.startswith(f"{P}actions.web: ")
    assert result.load_balancers == []  # the group's last good state stays as it is
    assert result.refused == {"shop"}


def test_a_refused_group_is_not_deleted_when_one_of_its_ingresses_leaves() -> None:
    bad = annotated(web="{not json")
    bad["metadata"]["annotations"][P + "group.name"] = "shop"
    leaving = ingress("old", [("/x", "Exact", "web-blue")], group__name="shop")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    result = plan("shop", [bad, leaving], COLOURS, [], [])
    assert (result.leaving, result.refused) == ({"shop": [("shop", "old")]}, {"shop"})
    assert result.deleted_stacks() == set()


def test_a_backend_using_a_missing_action_is_refused() -> None:
    ing = annotated(web=weighted(1, 1))
    del ing["metadata"]["annotations"][P + "actions.web"]
    result = plan("shop", [ing], COLOURS, [], [])
    assert [w[3] for w in result.warnings] == [f"backend web uses {P}actions.web: not found"]
    assert result.refused == {"shop/web"}


def test_health_checks_default_to_the_load_balancer_controllers_and_stay_in_elbv2s_ranges() -> None:
    assert health_check(ingress("web", [])) == HealthCheck("/", 15, 5, 2, 2, "200")
    assert health_check(
        ingress("web", [], success_codes="200-299,302", healthy_threshold_count="3")
    ) == HealthCheck(healthy_threshold=3, success_codes="200-299,302")
    for bad in (
        {"success_codes": "ok"},
        {"success_codes": "200,"},
        {"success_codes": "600"},
        {"healthcheck_interval_seconds": "3"},
        {"unhealthy_threshold_count": "11"},
    ):
        with pytest.raises(AnnotationError):
            health_check(ingress("web", [], **bad))


def test_target_group_attributes_from_ingress_then_service() -> None:
    ing = ingress(
        "web", [("/", "Prefix", "web")], target_group_attributes="deregistration_delay.timeout_seconds=30"
    )
    assert target_group_attributes(ing) == (("deregistration_delay.timeout_seconds", "30"),)
    svc = service("web")
    svc["metadata"]["annotations"] = {
        P + "target-group-attributes": "slow_start.duration_seconds=0, deregistration_delay.timeout_seconds=5"
    }
    (lb,) = plan("shop", [ing], [svc], [], []).load_balancers
    assert lb.target_groups[0].attributes == (
        ("deregistration_delay.timeout_seconds", "5"),
        ("slow_start.duration_seconds", "0"),
    )
    for bad in (
        "nope=1",
        "deregistration_delay.timeout_seconds",
        "deregistration_delay.timeout_seconds=3601",
        "stickiness.enabled=true",  # the local ALB does not stick sessions: refused, not ignored
    ):
        with pytest.raises(AnnotationError):
            target_group_attributes(ingress("web", [], target_group_attributes=bad))


# -- readiness gates


def gated(name: str, gate: str, containers_ready: bool, ip: str, **conditions: str) -> Any:
    found = {"ContainersReady": str(containers_ready), "Ready": "False", **conditions}
    return {
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web-green"}},
        "spec": {"readinessGates": [{"conditionType": gate}]},
        "status": {"podIP": ip, "conditions": [{"type": k, "status": v} for k, v in found.items()]},
    }


def test_a_pod_lacking_only_its_readiness_gate_is_a_target_and_its_gate_follows_target_health() -> None:
    ing = annotated(web=weighted(100, 0))
    (bare,) = plan("shop", [ing], COLOURS, [], []).load_balancers
    green = next(g for g in bare.target_groups if g.backend.service == "web-green")
    gate = green.readiness_gate
    assert gate == f"target-health.elbv2.k8s.aws/{green.name}"
    pods = [
        gated("waiting", gate, True, "127.131.0.2"),
        gated("starting", gate, False, "127.131.0.3"),
        {**pod("plain", ready=False), "status": {"podIP": "127.131.0.4", "conditions": []}},
    ]
    slices = [
        endpoint_slice(
            "web-green",
            ("waiting", "127.131.0.2", False, False),
            ("starting", "127.131.0.3", False, False),
            ("plain", "127.131.0.4", False, False),
        )
    ]
    desired = plan("shop", [ing], COLOURS, slices, pods)
    (lb,) = desired.load_balancers
    group = next(g for g in lb.target_groups if g.backend.service == "web-green")
    assert group.name == green.name  # named before any pod ran: the gate a new pod gets stays right
    assert group.targets == {("127.131.0.2", 8080)}
    assert gates_for(pods[1], [lb], COLOURS) == [gate]
    assert (
        gates_for({**pods[1], "metadata": {"namespace": "shop", "labels": {"app": "x"}}}, [lb], COLOURS) == []
    )

    def conditions(health: dict[str, Any]) -> list[GateCondition]:
        return gate_conditions(desired, pods, {green.name: health})

    registering = GateCondition(
        "shop", "waiting", gate, "False", "Elb.RegistrationInProgress", "Target registration is in progress"
    )
    assert conditions({}) == [registering]
    failing = {"state": "unhealthy", "reason": "Target.ResponseCodeMismatch", "description": "codes: [404]"}
    assert conditions({"127.131.0.2:8080": failing}) == [
        GateCondition("shop", "waiting", gate, "False", "Target.ResponseCodeMismatch", "codes: [404]")
    ]
    assert conditions({"127.131.0.2:8080": {"state": "healthy"}}) == [
        GateCondition("shop", "waiting", gate, "True")
    ]
    # the Ingress gone, its binding with it: the gate no longer holds the pod back
    assert gate_conditions(plan("shop", [], COLOURS, slices, pods), pods[:1], {}) == [
        GateCondition("shop", "waiting", gate, "True", "", BINDING_DELETED)
    ]


def test_the_kubelet_counts_readiness_gates_in_ready_but_not_in_containers_ready() -> None:
    ready, waiting = ContainerStatus("app", "img", ready=True), ContainerStatus("side", "img")
    gate = "target-health.elbv2.k8s.aws/k8s-shop-web-1"
    assert ready_condition([ready], [], {}) == (True, "", "")
    assert ready_condition([ready, waiting], [gate], {gate: "True"}) == (
        False,
        "ContainersNotReady",
        "containers with unready status: [side]",
    )
    assert ready_condition([ready], [gate], {}) == (
        False,
        "ReadinessGatesNotReady",
        f'corresponding condition of pod readiness gate "{gate}" does not exist.',
    )
    assert ready_condition([ready], [gate], {gate: "False"})[:2] == (False, "ReadinessGatesNotReady")
    assert ready_condition([ready], [gate], {gate: "True"}) == (True, "", "")


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


def test_weighted_picks_follow_the_weights_interleaved_and_never_a_zero_weight() -> None:
    picks = WeightedRoundRobin()
    runs = [picks.pick([("blue", 3), ("green", 1), ("idle", 0)]) for _ in range(40)]
    assert Counter(runs) == {"blue": 30, "green": 10}
    assert all(runs[i : i + 4].count("green") == 1 for i in range(0, 40, 4))
    assert [picks.pick([("blue", 50), ("green", 50)]) for _ in range(4)] == ["blue", "green", "blue", "green"]
    assert picks.pick([("blue", 0), ("green", 0)]) is None
