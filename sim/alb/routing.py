"""The data plane's view of the emulator's ALBs and how a request is routed by it, with no I/O.

`read_snapshot` turns the ELBv2 describe calls' answers into a `Snapshot` (target groups with their
registered targets and deregistration delay); `route` picks, for a request arriving on a listener port,
the load balancer, the rule (by priority, conditions `path-pattern`, `host-header`,
`http-request-method`, `http-header`, `query-string`; the listener's default last) and its action.
Patterns are ALB's: `*` any run of characters, `?` one; paths case-sensitive, hosts not. A forward
action's target group is picked by weight (`WeightedRoundRobin`: in proportion, interleaved, and never
one of weight 0).

Several ALBs on one listener port (they all share the data plane's local port): a request whose Host is
an ALB's DNS name goes to that ALB; otherwise the first ALB (oldest first) with a non-default rule that
matches it; otherwise the oldest ALB's default action.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Target:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class HealthSettings:
    path: str = "/"
    interval_seconds: float = 30.0
    timeout_seconds: float = 5.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    matcher: str = "200"
    port: str = "traffic-port"

    def success(self, status: int) -> bool:
        """Whether `status` is in the matcher (`200`, `200,302`, `200-299`)."""
        for part in self.matcher.split(","):
            low, _, high = part.strip().partition("-")
            if low.isdigit() and int(low) <= status <= int(high or low):
                return True
        return False


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    health: HealthSettings
    targets: tuple[Target, ...]
    deregistration_delay: float = 300.0  # seconds: attribute `deregistration_delay.timeout_seconds`


@dataclass(frozen=True)
class Rule:
    priority: int  # the default rule: a priority after every other
    conditions: tuple[Mapping[str, Any], ...]
    actions: tuple[Mapping[str, Any], ...]
    is_default: bool = False


@dataclass(frozen=True)
class LoadBalancer:
    arn: str
    name: str
    dns_name: str
    created: str
    listeners: Mapping[int, tuple[Rule, ...]]  # port -> rules in priority order, default last

    @property
    def log_id(self) -> str:
        """As ALB access logs name the load balancer: `app/<name>/<id>`."""
        return "/".join(self.arn.split(":loadbalancer/", 1)[-1].split("/")[:3])


@dataclass(frozen=True)
class Snapshot:
    load_balancers: tuple[LoadBalancer, ...] = ()
    target_groups: Mapping[str, TargetGroup] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    host: str  # without the port, lower case
    path: str
    query: str
    headers: Sequence[tuple[str, str]]  # lower-case names


def _pages(elb: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in elb.get_paginator(operation).paginate(**kwargs):
        items += page[key]
    return items


def read_snapshot(elb: Any) -> Snapshot:
    """The emulator's ALBs with their listeners, rules, target groups and registered targets (blocking)."""
    albs = []
    for lb in _pages(elb, "describe_load_balancers", "LoadBalancers"):
        if lb.get("Type", "application") != "application":
            continue
        listeners: dict[int, tuple[Rule, ...]] = {}
        for listener in _pages(elb, "describe_listeners", "Listeners", LoadBalancerArn=lb["LoadBalancerArn"]):
            rules = [
                Rule(
                    1 << 31 if r.get("IsDefault") else int(r["Priority"]),
                    tuple(r.get("Conditions") or ()),
                    tuple(r.get("Actions") or ()),
                    bool(r.get("IsDefault")),
                )
                for r in _pages(elb, "describe_rules", "Rules", ListenerArn=listener["ListenerArn"])
            ]
            listeners[int(listener["Port"])] = tuple(sorted(rules, key=lambda r: r.priority))
        created = str(lb.get("CreatedTime", ""))
        albs.append(
            LoadBalancer(lb["LoadBalancerArn"], lb["LoadBalancerName"], lb["DNSName"], created, listeners)
        )
    groups = {}
    for group in _pages(elb, "describe_target_groups", "TargetGroups"):
        health = HealthSettings(
            path=group.get("HealthCheckPath") or "/",
            interval_seconds=float(group.get("HealthCheckIntervalSeconds") or 30),
            timeout_seconds=float(group.get("HealthCheckTimeoutSeconds") or 5),
            healthy_threshold=int(group.get("HealthyThresholdCount") or 5),
            unhealthy_threshold=int(group.get("UnhealthyThresholdCount") or 2),
            matcher=(group.get("Matcher") or {}).get("HttpCode") or "200",
            port=str(group.get("HealthCheckPort") or "traffic-port"),
        )
        described = elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
        targets = tuple(
            Target(d["Target"]["Id"], int(d["Target"].get("Port") or group.get("Port") or 80))
            for d in described["TargetHealthDescriptions"]
        )
        attributes = elb.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])
        delay = next(
            (
                a["Value"]
                for a in attributes["Attributes"]
                if a["Key"] == "deregistration_delay.timeout_seconds"
            ),
            300,
        )
        groups[group["TargetGroupArn"]] = TargetGroup(
            group["TargetGroupArn"], group["TargetGroupName"], health, targets, float(delay)
        )
    albs.sort(key=lambda a: (a.created, a.name))
    return Snapshot(tuple(albs), groups)


@lru_cache(maxsize=1024)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def _values(condition: Mapping[str, Any], config_key: str) -> list[str]:
    return list((condition.get(config_key) or {}).get("Values") or condition.get("Values") or [])


def condition_holds(condition: Mapping[str, Any], request: Request) -> bool:
    kind = condition.get("Field")
    if kind == "path-pattern":
        return any(_matches(p, request.path) for p in _values(condition, "PathPatternConfig"))
    if kind == "host-header":
        return any(_matches(p, request.host, True) for p in _values(condition, "HostHeaderConfig"))
    if kind == "http-request-method":
        return request.method in _values(condition, "HttpRequestMethodConfig")
    if kind == "http-header":
        config = condition.get("HttpHeaderConfig") or {}
        name = str(config.get("HttpHeaderName", "")).lower()
        present = [v for k, v in request.headers if k == name]
        return any(_matches(p, v, True) for p in config.get("Values") or [] for v in present)
    if kind == "query-string":
        pairs = parse_qsl(request.query, keep_blank_values=True)
        wanted = (condition.get("QueryStringConfig") or {}).get("Values") or []
        return any(
            any(
                (w.get("Key") is None or _matches(w["Key"], k, True)) and _matches(w["Value"], v, True)
                for k, v in pairs
            )
            for w in wanted
        )
    return False  # a condition this data plane does not know never matches


def matching_rule(rules: Sequence[Rule], request: Request) -> Rule | None:
    for rule in rules:
        if rule.is_default or all(condition_holds(c, request) for c in rule.conditions):
            return rule
    return None


def route(snapshot: Snapshot, listener_port: int, request: Request) -> tuple[LoadBalancer, Rule] | None:
    """The load balancer and rule that take `request` on `listener_port`, or None if no ALB listens."""
    candidates = [lb for lb in snapshot.load_balancers if listener_port in lb.listeners]
    if not candidates:
        return None
    by_name = [lb for lb in candidates if lb.dns_name.lower() == request.host]
    if by_name:
        rule = matching_rule(by_name[0].listeners[listener_port], request)
        return (by_name[0], rule) if rule is not None else None
    for lb in candidates:
        rules = [r for r in lb.listeners[listener_port] if not r.is_default]
        rule = matching_rule(rules, request)
        if rule is not None:
            return lb, rule
    first = candidates[0]
    rule = matching_rule(first.listeners[listener_port], request)
    return (first, rule) if rule is not None else None


def forward_groups(action: Mapping[str, Any]) -> list[tuple[str, int]]:
    """A forward action's target groups with their weights."""
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
    if groups:
        return [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups]
    return [(action["TargetGroupArn"], 1)] if action.get("TargetGroupArn") else []


class WeightedRoundRobin:
    """Smooth weighted round robin (as nginx balances): over any run of sum-of-weights picks, each choice
    comes up exactly its weight's times, spread out rather than in bursts; a weight of 0 never."""

    def __init__(self) -> None:
        self._current: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}

    def pick(self, weighted: Sequence[tuple[str, int]]) -> str | None:
        choices = tuple((name, weight) for name, weight in weighted if weight > 0)
        if not choices:
            return None
        current = self._current.setdefault(choices, dict.fromkeys((name for name, _ in choices), 0))
        for name, weight in choices:
            current[name] += weight
        best = max(choices, key=lambda c: current[c[0]])[0]
        current[best] -= sum(weight for _, weight in choices)
        return best
