"""Making the emulator's ELBv2 state what the model asks for: blocking boto3 calls, run in a thread by
the controller.

Everything this writes is tagged `elbv2.k8s.aws/cluster` and `ingress.k8s.aws/stack`, and found again
by those tags, so a restarted controller picks up where it left off and a stack no Ingress declares is
removed. Each step reads first and writes only a difference, so a pass over unchanged state makes no
write call: target groups (health checks, the attributes the annotations name, targets), listeners and
their rules (actions in ELBv2's shape, a forward's weighted `ForwardConfig` included). Subnets, when no
annotation names them, are discovered as the AWS Load Balancer Controller does: those tagged
`kubernetes.io/role/elb` (internet-facing) or `kubernetes.io/role/internal-elb` (internal), preferring
the ones also tagged for the cluster; else the subnets of the default (or first) VPC; one per
availability zone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from botocore.config import Config

from sim.alb.model import (
    CLUSTER_TAG,
    RESOURCE_TAG,
    STACK_TAG,
    Backend,
    ListenerSpec,
    LoadBalancerSpec,
    TargetGroupSpec,
)
from sim.aws import CREDENTIALS, REGION

log = logging.getLogger(__name__)

TAG_BATCH = 20  # describe_tags takes at most 20 ARNs


def client(endpoint: str, service: str) -> Any:
    """A boto3 client for the emulator, with short timeouts so that a gone emulator fails a pass fast."""
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=config,
    )


def _tags(elb: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), TAG_BATCH):
        found = elb.describe_tags(ResourceArns=arns[start : start + TAG_BATCH])["TagDescriptions"]
        for item in found:
            out[item["ResourceArn"]] = {t["Key"]: t["Value"] for t in item.get("Tags") or []}
    return out


def _pages(elb: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in elb.get_paginator(operation).paginate(**kwargs):
        items += page[key]
    return items


def _action_key(actions: Iterable[Mapping[str, Any]]) -> tuple[Any, ...]:
    """Actions compared by what they do (moto fills in defaults the request left out)."""
    out: list[Any] = []
    for action in actions:
        if action["Type"] == "forward":
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or [
                {"TargetGroupArn": action.get("TargetGroupArn"), "Weight": 1}
            ]
            out.append(("forward", tuple(sorted((g["TargetGroupArn"], g.get("Weight", 1)) for g in groups))))
        else:
            config = action.get("FixedResponseConfig") or action.get("RedirectConfig") or {}
            out.append((action["Type"], tuple(sorted((k, str(v)) for k, v in config.items()))))
    return tuple(out)


def _condition_key(conditions: Iterable[Mapping[str, Any]]) -> tuple[Any, ...]:
    keys = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig"}
    out = []
    for condition in conditions:
        config = condition.get(keys.get(condition["Field"], ""), {})
        out.append((condition["Field"], tuple(config.get("Values") or condition.get("Values") or [])))
    return tuple(sorted(out))


class ElbV2State:
    """The cluster's load balancers in the emulator; `sync` and `delete` each take one stack."""

    def __init__(self, endpoint: str, cluster: str) -> None:
        self.cluster = cluster
        self.elb = client(endpoint, "elbv2")
        self.ec2 = client(endpoint, "ec2")

    # -- reading

    def stacks(self) -> dict[str, dict[str, Any]]:
        """The cluster's load balancers by stack."""
        lbs = _pages(self.elb, "describe_load_balancers", "LoadBalancers")
        tags = _tags(self.elb, [lb["LoadBalancerArn"] for lb in lbs])
        out: dict[str, dict[str, Any]] = {}
        for lb in lbs:
            own = tags.get(lb["LoadBalancerArn"], {})
            if own.get(CLUSTER_TAG) == self.cluster and STACK_TAG in own:
                out[own[STACK_TAG]] = lb
        return out

    def _target_groups(self, stack: str) -> dict[str, dict[str, Any]]:
        """The stack's target groups by name."""
        groups = _pages(self.elb, "describe_target_groups", "TargetGroups")
        tags = _tags(self.elb, [g["TargetGroupArn"] for g in groups])
        return {
            g["TargetGroupName"]: g
            for g in groups
            if tags.get(g["TargetGroupArn"], {}).get(CLUSTER_TAG) == self.cluster
            and tags.get(g["TargetGroupArn"], {}).get(STACK_TAG) == stack
        }

    def _subnets(self, spec: LoadBalancerSpec) -> list[str]:
        if spec.subnets is not None:
            return self._named_subnets(spec.subnets)
        subnets = self.ec2.describe_subnets()["Subnets"]
        role = (
            "kubernetes.io/role/elb"
            if spec.scheme == "internet-facing"
            else "kubernetes.io/role/internal-elb"
        )

        def tags(subnet: Mapping[str, Any]) -> dict[str, str]:
            return {t["Key"]: t["Value"] for t in subnet.get("Tags") or []}

        tagged = [s for s in subnets if role in tags(s)]
        ours = [s for s in tagged if f"kubernetes.io/cluster/{self.cluster}" in tags(s)]
        chosen = ours or tagged
        if not chosen:
            vpcs = self.ec2.describe_vpcs()["Vpcs"]
            vpc = next((v for v in vpcs if v.get("IsDefault")), vpcs[0] if vpcs else None)
            if vpc is None:
                raise RuntimeError("the emulator has no VPC to put a load balancer in")
            chosen = [s for s in subnets if s["VpcId"] == vpc["VpcId"]]
        by_zone: dict[str, str] = {}
        for subnet in sorted(chosen, key=lambda s: s["SubnetId"]):
            by_zone.setdefault(subnet["AvailabilityZone"], subnet["SubnetId"])
        if len(by_zone) < 2 and len(chosen) >= 2:
            return sorted(s["SubnetId"] for s in chosen)[:2]
        return sorted(by_zone.values())

    def _named_subnets(self, names: tuple[str, ...]) -> list[str]:
        ids = [n for n in names if n.startswith("subnet-")]
        others = [n for n in names if not n.startswith("subnet-")]
        if others:
            found = self.ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": others}])["Subnets"]
            ids += [s["SubnetId"] for s in found]
        return sorted(set(ids))

    # -- writing

    def sync(self, spec: LoadBalancerSpec) -> str:
        """Make the stack's load balancer what `spec` says; its DNS name."""
        tags = [{"Key": k, "Value": v} for k, v in spec.tags(self.cluster).items()]
        lb = self.stacks().get(spec.stack)
        if lb is not None and (lb["LoadBalancerName"] != spec.name or lb.get("Scheme") != spec.scheme):
            self.delete(spec.stack, keep_target_groups=True)  # a new scheme is a new load balancer
            lb = None
        subnets = self._subnets(spec)
        if lb is None:
            kwargs: dict[str, Any] = {}
            if spec.security_groups:
                kwargs["SecurityGroups"] = list(spec.security_groups)
            lb = self.elb.create_load_balancer(
                Name=spec.name, Subnets=subnets, Scheme=spec.scheme, Type="application", Tags=tags, **kwargs
            )["LoadBalancers"][0]
            log.info("created load balancer %s for %s", spec.name, spec.stack)
        else:
            current = sorted(z["SubnetId"] for z in lb.get("AvailabilityZones") or [] if z.get("SubnetId"))
            if current and current != sorted(subnets):
                self.elb.set_subnets(LoadBalancerArn=lb["LoadBalancerArn"], Subnets=subnets)
            if spec.security_groups and sorted(lb.get("SecurityGroups") or []) != list(spec.security_groups):
                self.elb.set_security_groups(
                    LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=list(spec.security_groups)
                )
        arns = self._sync_target_groups(spec, lb["VpcId"], tags)
        self._sync_listeners(lb["LoadBalancerArn"], spec.listeners, arns)
        for name, group in self._target_groups(spec.stack).items():
            if name not in {t.name for t in spec.target_groups}:
                self.elb.delete_target_group(TargetGroupArn=group["TargetGroupArn"])
        return str(lb["DNSName"])

    def _sync_target_groups(
        self, spec: LoadBalancerSpec, vpc: str, tags: list[dict[str, str]]
    ) -> dict[Backend, str]:
        existing = self._target_groups(spec.stack)
        arns: dict[Backend, str] = {}
        for want in spec.target_groups:
            group = existing.get(want.name)
            health = want.health
            settings = {
                "HealthCheckPath": health.path,
                "HealthCheckIntervalSeconds": health.interval_seconds,
                "HealthCheckTimeoutSeconds": health.timeout_seconds,
                "HealthyThresholdCount": health.healthy_threshold,
                "UnhealthyThresholdCount": health.unhealthy_threshold,
                "Matcher": {"HttpCode": health.success_codes},
            }
            if group is None:
                group = self.elb.create_target_group(
                    Name=want.name,
                    Protocol="HTTP",
                    Port=want.port,
                    VpcId=vpc,
                    TargetType="ip",
                    HealthCheckProtocol="HTTP",
                    Tags=[*tags, {"Key": RESOURCE_TAG, "Value": want.backend.resource}],
                    **settings,
                )["TargetGroups"][0]
            elif any(group.get(k) != v for k, v in settings.items()):
                self.elb.modify_target_group(TargetGroupArn=group["TargetGroupArn"], **settings)
            arns[want.backend] = group["TargetGroupArn"]
            self._sync_attributes(group["TargetGroupArn"], want)
            self._sync_targets(group["TargetGroupArn"], want)
        return arns

    def _sync_attributes(self, arn: str, want: TargetGroupSpec) -> None:
        """Set the attributes the annotation names; as upstream, the others are left as they are."""
        if not want.attributes:
            return
        found = self.elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        current = {item["Key"]: str(item["Value"]) for item in found}
        changed = [{"Key": k, "Value": v} for k, v in want.attributes if current.get(k) != v]
        if changed:
            self.elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=changed)
            log.info("set %s on %s", changed, want.name)

    def _sync_targets(self, arn: str, want: TargetGroupSpec) -> None:
        health = self.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        registered = {(d["Target"]["Id"], int(d["Target"]["Port"])) for d in health}
        gone = [{"Id": ip, "Port": port} for ip, port in sorted(registered - want.targets)]
        new = [{"Id": ip, "Port": port} for ip, port in sorted(want.targets - registered)]
        if gone:  # deregister first: a target going away must get no new request
            self.elb.deregister_targets(TargetGroupArn=arn, Targets=gone)
            log.info("deregistered %s from %s", gone, want.name)
        if new:
            self.elb.register_targets(TargetGroupArn=arn, Targets=new)
            log.info("registered %s in %s", new, want.name)

    def _sync_listeners(
        self, lb_arn: str, listeners: tuple[ListenerSpec, ...], arns: dict[Backend, str]
    ) -> None:
        existing = {
            int(item["Port"]): item
            for item in _pages(self.elb, "describe_listeners", "Listeners", LoadBalancerArn=lb_arn)
        }
        for want in listeners:
            default = [want.default.api(arns)]
            listener = existing.pop(want.port, None)
            if listener is None:
                listener = self.elb.create_listener(
                    LoadBalancerArn=lb_arn, Protocol="HTTP", Port=want.port, DefaultActions=default
                )["Listeners"][0]
            elif _action_key(listener.get("DefaultActions") or []) != _action_key(default):
                self.elb.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=default)
            self._sync_rules(listener["ListenerArn"], want, arns)
        for extra in existing.values():
            self.elb.delete_listener(ListenerArn=extra["ListenerArn"])

    def _sync_rules(self, listener_arn: str, want: ListenerSpec, arns: dict[Backend, str]) -> None:
        rules = _pages(self.elb, "describe_rules", "Rules", ListenerArn=listener_arn)
        current = {int(r["Priority"]): r for r in rules if not r.get("IsDefault")}
        for rule in want.rules:
            conditions, actions = rule.api_conditions(), [rule.action.api(arns)]
            have = current.pop(rule.priority, None)
            if have is None:
                self.elb.create_rule(
                    ListenerArn=listener_arn, Priority=rule.priority, Conditions=conditions, Actions=actions
                )
            elif _condition_key(have.get("Conditions") or []) != _condition_key(conditions) or _action_key(
                have.get("Actions") or []
            ) != _action_key(actions):
                self.elb.modify_rule(RuleArn=have["RuleArn"], Conditions=conditions, Actions=actions)
        for extra in current.values():
            self.elb.delete_rule(RuleArn=extra["RuleArn"])

    def delete(self, stack: str, keep_target_groups: bool = False) -> None:
        """Remove the stack's load balancer (listeners and rules with it) and its target groups."""
        lb = self.stacks().get(stack)
        if lb is not None:
            for listener in _pages(
                self.elb, "describe_listeners", "Listeners", LoadBalancerArn=lb["LoadBalancerArn"]
            ):
                self.elb.delete_listener(ListenerArn=listener["ListenerArn"])
            self.elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
            log.info("deleted load balancer %s of %s", lb["LoadBalancerName"], stack)
        if not keep_target_groups:
            for group in self._target_groups(stack).values():
                self.elb.delete_target_group(TargetGroupArn=group["TargetGroupArn"])
