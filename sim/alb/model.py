"""What an `alb` Ingress asks of ELBv2, as the AWS Load Balancer Controller reads it: pure functions from
the cluster's objects (Ingresses, IngressClasses, Services, EndpointSlices, Pods) to the desired load
balancers, with no I/O, so that annotations, rule building and group merging are testable on their own.

Honoured annotations (prefix `alb.ingress.kubernetes.io/`): `scheme`, `target-type` (`ip`; `instance`
is warned about and treated as `ip`), `group.name`, `group.order`, `listen-ports` (HTTP only),
`subnets`, `security-groups`, `healthcheck-path`, `healthcheck-interval-seconds`,
`healthcheck-timeout-seconds`, `healthy-threshold-count`, `unhealthy-threshold-count`, `success-codes`
(AWS's ranges; the LBC's defaults otherwise: interval 15 s, timeout 5 s, thresholds 2, code 200) and
`target-group-attributes` (`key=value,...`, ELBv2's target group attribute keys) (the health-check and
attribute ones also on the backend Service, which wins), and `actions.<name>`: a backend whose port is
`use-annotation` takes the action named by its service name: `forward` (to `targetGroupARN`, or to
`forwardConfig.targetGroups`, each a `serviceName`/`servicePort` or a `targetGroupARN`, with a `weight`),
`fixed-response` (`fixedResponseConfig`) or `redirect` (`redirectConfig`). Ingresses of one group share
one load balancer; their rules are merged by `group.order`, then namespace/name, each Ingress's paths in
spec order. An Ingress whose annotations are refused holds back its whole group: what exists of it is
left as it is (the last good state, as upstream).

A target is an endpoint of the backend Service's EndpointSlices that is ready and whose pod is Ready and
not being deleted (so a target goes as soon as its pod is marked for deletion, before the pod stops) or,
as upstream registers them, whose pod lacks only this target group's readiness gate (its containers are
ready): a gated pod turns Ready once its target is healthy, so it must be a target before that. A target
group is named from the cluster, the stack, the Service port and its `targetPort` as declared, so the
name (and the readiness gate named after it) is known before any pod runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PREFIX = "alb.ingress.kubernetes.io/"
CLASS_NAME = "alb"
CLASS_CONTROLLER = "ingress.k8s.aws/alb"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
FINALIZER = "ingress.k8s.aws/resources"
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
STACK_TAG = "ingress.k8s.aws/stack"
RESOURCE_TAG = "ingress.k8s.aws/resource"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: a pod's readiness gate for its target in a target group: this prefix and the target group's name
READINESS_GATE_PREFIX = "target-health.elbv2.k8s.aws/"
USE_ANNOTATION = "use-annotation"
DEFAULT_LISTEN_PORTS = (("HTTP", 80),)
NOT_FOUND = {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not Found"}
#: ELBv2's target group attributes of an ALB's IP target group
TARGET_GROUP_ATTRIBUTES = frozenset(
    {
        "deregistration_delay.timeout_seconds",
        "stickiness.enabled",
        "stickiness.type",
        "stickiness.lb_cookie.duration_seconds",
        "stickiness.app_cookie.cookie_name",
        "stickiness.app_cookie.duration_seconds",
        "load_balancing.algorithm.type",
        "load_balancing.algorithm.anomaly_mitigation",
        "load_balancing.cross_zone.enabled",
        "slow_start.duration_seconds",
        "target_group_health.dns_failover.minimum_healthy_targets.count",
        "target_group_health.dns_failover.minimum_healthy_targets.percentage",
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
    }
)
#: attributes the local data plane implements only at their default: another value is refused, not ignored
UNSUPPORTED_ATTRIBUTES = {
    "stickiness.enabled": "false",
    "load_balancing.algorithm.type": "round_robin",
    "slow_start.duration_seconds": "0",
}
#: the keys of an action annotation's `fixedResponseConfig` and `redirectConfig`, and ELBv2's
FIXED_RESPONSE_FIELDS = {
    "statusCode": "StatusCode",
    "contentType": "ContentType",
    "messageBody": "MessageBody",
}
REDIRECT_FIELDS = {
    **{key: key.capitalize() for key in ("protocol", "host", "port", "path", "query")},
    "statusCode": "StatusCode",
}
SUCCESS_CODES = re.compile(r"\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*")

Obj = Mapping[str, Any]


class AnnotationError(ValueError):
    """An annotation the controller cannot use; the message names it."""


@dataclass(frozen=True)
class Backend:
    """A Service port an Ingress path sends to (`port` is the Service port's number or name)."""

    namespace: str
    service: str
    port: int | str

    @property
    def resource(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True)
class ActionSpec:
    """A listener rule's action: `forward` to weighted target groups, each a Service port (a target group
    of this stack) or a target group ARN given outright; or `fixed-response` or `redirect`, whose ELBv2
    config (`FixedResponseConfig`, `RedirectConfig`) is `config`."""

    type: str
    groups: tuple[tuple[Backend | str, int], ...] = ()
    config: tuple[tuple[str, str], ...] = ()

    @property
    def backends(self) -> tuple[Backend, ...]:
        return tuple(target for target, _ in self.groups if isinstance(target, Backend))

    def api(self, arns: Mapping[Backend, str]) -> dict[str, Any]:
        """The action in ELBv2's shape, with the stack's target groups' ARNs."""
        if self.type == "forward":
            groups = [
                {"TargetGroupArn": arns[target] if isinstance(target, Backend) else target, "Weight": weight}
                for target, weight in self.groups
            ]
            config = {"TargetGroups": groups, "TargetGroupStickinessConfig": {"Enabled": False}}
            return {"Type": "forward", "ForwardConfig": config}
        key = "FixedResponseConfig" if self.type == "fixed-response" else "RedirectConfig"
        return {"Type": self.type, key: dict(self.config)}


def forward(backend: Backend) -> ActionSpec:
    return ActionSpec("forward", ((backend, 1),))


NOT_FOUND_ACTION = ActionSpec("fixed-response", config=tuple(NOT_FOUND.items()))


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/"
    interval_seconds: int = 15
    timeout_seconds: int = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2
    success_codes: str = "200"


@dataclass(frozen=True)
class TargetGroupSpec:
    name: str
    backend: Backend
    port: int  # the pods' port (target type ip)
    health: HealthCheck
    targets: frozenset[tuple[str, int]]  # (pod IP, port)
    attributes: tuple[tuple[str, str], ...] = ()  # from `target-group-attributes`, sorted by key

    @property
    def readiness_gate(self) -> str:
        """The condition type of a pod's readiness gate for its target here."""
        return READINESS_GATE_PREFIX + self.name


@dataclass(frozen=True)
class RuleSpec:
    """One listener rule: ELBv2 conditions (API shape) and what it does."""

    priority: int
    conditions: tuple[tuple[str, tuple[str, ...]], ...]  # (field, values): host-header, path-pattern
    action: ActionSpec

    def api_conditions(self) -> list[dict[str, Any]]:
        keys = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig"}
        return [{"Field": f, keys[f]: {"Values": list(values)}} for f, values in self.conditions]


@dataclass(frozen=True)
class ListenerSpec:
    protocol: str
    port: int
    rules: tuple[RuleSpec, ...]
    default: ActionSpec  # the default backend's, else a 404 fixed response


@dataclass(frozen=True)
class LoadBalancerSpec:
    stack: str  # the group name, or namespace/name of a lone Ingress
    name: str
    scheme: str
    subnets: tuple[str, ...] | None  # None: discover them
    security_groups: tuple[str, ...] | None
    listeners: tuple[ListenerSpec, ...]
    target_groups: tuple[TargetGroupSpec, ...]
    members: tuple[tuple[str, str], ...]  # the (namespace, name) of its Ingresses

    def tags(self, cluster: str) -> dict[str, str]:
        return {CLUSTER_TAG: cluster, STACK_TAG: self.stack}


@dataclass
class Plan:
    """Every desired load balancer; the Ingresses being deleted, by stack (a stack with no live
    Ingress left is to be deleted; either way their finalizer goes once their stack is synced); and the
    warnings to report on Ingresses as (namespace, name, reason, message)."""

    load_balancers: list[LoadBalancerSpec] = field(default_factory=list)
    leaving: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    warnings: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: stacks with an Ingress whose annotations were refused: what exists of them is left as it is, and
    #: their leaving Ingresses keep their finalizer until the stack can be synced
    refused: set[str] = field(default_factory=set)

    def deleted_stacks(self) -> set[str]:
        return set(self.leaving) - {lb.stack for lb in self.load_balancers} - self.refused


def annotation(ingress: Obj, name: str) -> str | None:
    value = ((ingress.get("metadata") or {}).get("annotations") or {}).get(PREFIX + name)
    return None if value is None else str(value).strip()


def is_alb(ingress: Obj, classes: Iterable[Obj] = ()) -> bool:
    """Whether the Ingress is this controller's: class `alb` (by name, by an IngressClass naming the
    controller, or by the legacy annotation)."""
    class_name = (ingress.get("spec") or {}).get("ingressClassName")
    if class_name is None:
        annotations = (ingress.get("metadata") or {}).get("annotations") or {}
        return annotations.get(CLASS_ANNOTATION) == CLASS_NAME
    if class_name == CLASS_NAME:
        return True
    return any(
        c["metadata"]["name"] == class_name and (c.get("spec") or {}).get("controller") == CLASS_CONTROLLER
        for c in classes
    )


def listen_ports(ingress: Obj) -> tuple[tuple[str, int], ...]:
    """`listen-ports`, e.g. `[{"HTTP": 80}, {"HTTP": 8081}]`; HTTPS is refused (no certificates here)."""
    raw = annotation(ingress, "listen-ports")
    if raw is None:
        return DEFAULT_LISTEN_PORTS
    try:
        entries = json.loads(raw)
        ports = [(str(proto).upper(), int(port)) for entry in entries for proto, port in entry.items()]
    except (ValueError, TypeError, AttributeError) as err:
        raise AnnotationError(f'listen-ports {raw!r} is not a JSON list like [{{"HTTP": 80}}]') from err
    for proto, port in ports:
        if proto != "HTTP":
            raise AnnotationError(f"listen-ports: {proto} is not supported by the local ALB (HTTP only)")
        if not 1 <= port <= 65535:
            raise AnnotationError(f"listen-ports: {port} is not a port")
    if not ports:
        raise AnnotationError("listen-ports is empty")
    return tuple(sorted(set(ports), key=lambda p: p[1]))


def scheme(ingress: Obj) -> str:
    value = annotation(ingress, "scheme") or "internal"
    if value not in ("internet-facing", "internal"):
        raise AnnotationError(f"scheme {value!r} is neither internet-facing nor internal")
    return value


def group_order(ingress: Obj) -> int:
    raw = annotation(ingress, "group.order") or "0"
    try:
        order = int(raw)
    except ValueError as err:
        raise AnnotationError(f"group.order {raw!r} is not an integer") from err
    if not -1000 <= order <= 1000:
        raise AnnotationError(f"group.order {order} is outside [-1000, 1000]")
    return order


def stack_of(ingress: Obj) -> str:
    """The group an Ingress belongs to: `group.name`, or itself as namespace/name."""
    meta = ingress["metadata"]
    return annotation(ingress, "group.name") or f"{meta['namespace']}/{meta['name']}"


def _id_list(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    items = tuple(sorted({item.strip() for item in raw.split(",") if item.strip()}))
    return items or None


def _number(raw: str, key: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError as err:
        raise AnnotationError(f"{key} {raw!r} is not an integer") from err
    if not low <= value <= high:
        raise AnnotationError(f"{key} {value} is outside [{low}, {high}]")
    return value


def health_check(*sources: Obj) -> HealthCheck:
    """The health check from the annotations of `sources` (later ones win: Ingress, then Service), in
    ELBv2's ranges."""
    numbers = {  # annotation: (field, ELBv2's range)
        "healthcheck-interval-seconds": ("interval_seconds", 5, 300),
        "healthcheck-timeout-seconds": ("timeout_seconds", 2, 120),
        "healthy-threshold-count": ("healthy_threshold", 2, 10),
        "unhealthy-threshold-count": ("unhealthy_threshold", 2, 10),
    }
    values: dict[str, Any] = {}
    for source in sources:
        if (path := annotation(source, "healthcheck-path")) is not None:
            if not path.startswith("/"):
                raise AnnotationError(f"healthcheck-path {path!r} does not start with /")
            values["path"] = path
        if (codes := annotation(source, "success-codes")) is not None:
            if not SUCCESS_CODES.fullmatch(codes) or not all(
                200 <= int(code) <= 499 for code in re.findall(r"\d{3}", codes)
            ):
                raise AnnotationError(
                    f"success-codes {codes!r} is not like 200, 200,302 or 200-299 (200-499)"
                )
            values["success_codes"] = codes
        for key, (attr, low, high) in numbers.items():
            if (raw := annotation(source, key)) is not None:
                values[attr] = _number(raw, key, low, high)
    interval = values.get("interval_seconds", HealthCheck.interval_seconds)
    if "timeout_seconds" not in values:  # ELBv2 wants the timeout below the interval
        values["timeout_seconds"] = max(2, min(HealthCheck.timeout_seconds, interval - 1))
    if values["timeout_seconds"] >= interval:
        raise AnnotationError(f"healthcheck-timeout-seconds must be below the interval ({interval} s)")
    return HealthCheck(**values)


def target_group_attributes(*sources: Obj) -> tuple[tuple[str, str], ...]:
    """`target-group-attributes` (`key=value,...`) of the last of `sources` (Ingress, then Service) that
    has it, as sorted pairs; keys ELBv2 knows, values the local ALB implements."""
    raw = next(
        (v for s in reversed(sources) if (v := annotation(s, "target-group-attributes")) is not None), None
    )
    pairs: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise AnnotationError(f"target-group-attributes: {item.strip()!r} is not key=value")
        if key not in TARGET_GROUP_ATTRIBUTES:
            raise AnnotationError(f"target-group-attributes: {key} is not a target group attribute")
        if key in UNSUPPORTED_ATTRIBUTES and value.lower() != UNSUPPORTED_ATTRIBUTES[key]:
            raise AnnotationError(f"target-group-attributes: {key}={value} is not supported by the local ALB")
        pairs[key] = value
    if "deregistration_delay.timeout_seconds" in pairs:
        delay = pairs["deregistration_delay.timeout_seconds"]
        _number(delay, "target-group-attributes: deregistration_delay.timeout_seconds", 0, 3600)
    return tuple(sorted(pairs.items()))


def _service_port_ref(value: Any) -> int | str:
    """A `servicePort` as the LBC reads it: a number, or a name (a numeric string is a number)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ValueError(f"servicePort {value!r} is neither a port number nor a name")
    return int(value) if isinstance(value, int) or value.isdigit() else value


def _weight(value: Any) -> int:
    weight = 1 if value is None else value
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 999:
        raise ValueError(f"weight {value!r} is not an integer in [0, 999]")
    return weight


def _forward_action(namespace: str, spec: Mapping[str, Any]) -> ActionSpec:
    config = spec.get("forwardConfig")
    if config is None:
        arn = spec.get("targetGroupARN")
        if not isinstance(arn, str) or not arn:
            raise ValueError("a forward action needs forwardConfig or targetGroupARN")
        return ActionSpec("forward", ((arn, 1),))
    if not isinstance(config, Mapping) or not isinstance(config.get("targetGroups"), list):
        raise ValueError("forwardConfig needs a targetGroups list")
    stickiness = config.get("targetGroupStickinessConfig") or {}
    if not isinstance(stickiness, Mapping) or stickiness.get("enabled"):
        raise ValueError("targetGroupStickinessConfig: stickiness is not supported by the local ALB")
    groups: list[tuple[Backend | str, int]] = []
    for item in config["targetGroups"]:
        if not isinstance(item, Mapping):
            raise ValueError(f"targetGroups entry {item!r} is not an object")
        target: Backend | str
        if item.get("targetGroupARN"):
            target = str(item["targetGroupARN"])
        elif item.get("serviceName"):
            target = Backend(namespace, str(item["serviceName"]), _service_port_ref(item.get("servicePort")))
        else:
            raise ValueError(f"targetGroups entry {dict(item)} names neither serviceName nor targetGroupARN")
        if any(target == other for other, _ in groups):
            raise ValueError(f"targetGroups names {target} twice")
        groups.append((target, _weight(item.get("weight"))))
    if not groups:
        raise ValueError("forwardConfig.targetGroups is empty")
    return ActionSpec("forward", tuple(groups))


def _configured_action(kind: str, config: Any, fields: Mapping[str, str]) -> ActionSpec:
    """A fixed-response or redirect action: `fields` maps the annotation's keys to ELBv2's."""
    if not isinstance(config, Mapping) or not config.get("statusCode"):
        raise ValueError(f"a {kind} action needs a config with a statusCode")
    pairs = [(api, str(config[key])) for key, api in fields.items() if config.get(key) is not None]
    return ActionSpec(kind, config=tuple(pairs))


def actions(ingress: Obj) -> dict[str, ActionSpec]:
    """The Ingress's `actions.<name>` annotations by name."""
    namespace = ingress["metadata"].get("namespace", "")
    found: dict[str, ActionSpec] = {}
    for key, raw in ((ingress.get("metadata") or {}).get("annotations") or {}).items():
        if not key.startswith(PREFIX + "actions."):
            continue
        name = key.removeprefix(PREFIX + "actions.")
        try:
            spec = json.loads(raw)
            if not isinstance(spec, Mapping):
                raise ValueError("not a JSON object")
            kind = spec.get("type")
            if kind == "forward":
                found[name] = _forward_action(namespace, spec)
            elif kind == "fixed-response":
                found[name] = _configured_action(kind, spec.get("fixedResponseConfig"), FIXED_RESPONSE_FIELDS)
            elif kind == "redirect":
                found[name] = _configured_action(kind, spec.get("redirectConfig"), REDIRECT_FIELDS)
            else:
                raise ValueError(f"type {kind!r} is none of forward, fixed-response, redirect")
        except ValueError as err:  # json.JSONDecodeError is one
            raise AnnotationError(f"{key}: {err}") from err
    return found


def path_patterns(path: str | None, path_type: str) -> tuple[str, ...]:
    """An Ingress path as ALB path-pattern values (Prefix `/a` matches `/a` and `/a/...`)."""
    if not path:
        return ("/*",)
    if path_type == "Exact":
        return (path,)
    if path_type == "Prefix":
        trimmed = path.rstrip("/")
        return ("/*",) if not trimmed else (trimmed, f"{trimmed}/*")
    return (path,)  # ImplementationSpecific: the ALB's own pattern syntax


def _short(text: str, length: int) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", text)[:length].lower()


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:10]


def load_balancer_name(cluster: str, stack: str, scheme_value: str) -> str:
    """As the AWS Load Balancer Controller names them: `k8s-<ns>-<name>-<hash>` or `k8s-<group>-<hash>`."""
    digest = _digest(cluster, stack, scheme_value)
    if "/" in stack:
        namespace, name = stack.split("/", 1)
        return f"k8s-{_short(namespace, 8)}-{_short(name, 8)}-{digest}"
    return f"k8s-{_short(stack, 17)}-{digest}"


def target_group_name(cluster: str, stack: str, backend: Backend, target_port: int | str) -> str:
    """As the LBC names them, from what the Ingress and Service declare (`target_port`: the Service
    port's `targetPort`), never from running pods."""
    digest = _digest(cluster, stack, backend.resource, target_port, "HTTP", "ip")
    return f"k8s-{_short(backend.namespace, 8)}-{_short(backend.service, 8)}-{digest}"


def _service_port(service: Obj, port: int | str) -> Obj | None:
    for entry in (service.get("spec") or {}).get("ports") or []:
        if (isinstance(port, int) and entry.get("port") == port) or entry.get("name") == port:
            return dict(entry)
    return None


def _condition(pod: Obj, kind: str) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _eligible(pod: Obj | None, endpoint_ready: bool, gate: str | None) -> bool:
    """Whether an endpoint's pod may be a target: Ready (and the endpoint with it), or lacking only
    readiness gate `gate` (its containers ready); never while being deleted."""
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return False
    if _condition(pod, "Ready"):
        return endpoint_ready
    gates = {g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []}
    return gate in gates and _condition(pod, "ContainersReady")


def targets(
    backend: Backend,
    service: Obj,
    slices: Sequence[Obj],
    pods: Mapping[tuple[str, str], Obj],
    gate: str | None = None,
) -> tuple[int, frozenset[tuple[str, int]]]:
    """The target group's port and its targets (pod IP, pod port): the endpoints of the Service port, as
    its EndpointSlices list them, that are ready with a Ready pod, or whose pod lacks only readiness gate
    `gate`; never a terminating one."""
    service_port = _service_port(service, backend.port) or {}
    target_port = service_port.get("targetPort", service_port.get("port", 0))
    fallback = int(target_port) if str(target_port).isdigit() else int(service_port.get("port", 0))
    port_name = str(service_port.get("name") or "")
    found: set[tuple[str, int]] = set()
    ports_seen: list[int] = []
    for slice_obj in slices:
        labels = slice_obj["metadata"].get("labels") or {}
        if (
            slice_obj["metadata"].get("namespace") != backend.namespace
            or labels.get(SERVICE_NAME_LABEL) != backend.service
        ):
            continue
        number = next(
            (p["port"] for p in slice_obj.get("ports") or [] if str(p.get("name") or "") == port_name), None
        )
        if number is None:
            continue
        ports_seen.append(int(number))
        for endpoint in slice_obj.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("terminating"):
                continue
            ref = endpoint.get("targetRef") or {}
            ready = bool(conditions.get("ready"))
            if ref.get("kind") == "Pod":
                ready = _eligible(pods.get((backend.namespace, ref.get("name", ""))), ready, gate)
            if not ready:
                continue
            for address in endpoint.get("addresses") or []:
                found.add((str(address), int(number)))
    port = min(ports_seen) if ports_seen else fallback
    return port, frozenset(found)


def _backend(namespace: str, spec: Obj | None) -> Backend | None:
    service = (spec or {}).get("service")
    if not service:
        return None
    port = service.get("port") or {}
    number = port.get("number")
    return Backend(namespace, service["name"], int(number) if number is not None else str(port.get("name")))


@dataclass
class _Member:
    ingress: Obj
    order: int
    ports: tuple[tuple[str, int], ...]
    actions: dict[str, ActionSpec]


def _validated(ingress: Obj) -> _Member:
    """The Ingress as a member of its group, once every annotation it uses is valid."""
    member = _Member(ingress, group_order(ingress), listen_ports(ingress), actions(ingress))
    scheme(ingress)
    health_check(ingress)
    target_group_attributes(ingress)
    namespace = ingress["metadata"].get("namespace", "")
    spec = ingress.get("spec") or {}
    paths = [
        p.get("backend") for r in spec.get("rules") or [] for p in (r.get("http") or {}).get("paths") or []
    ]
    for backend in (_backend(namespace, b) for b in [spec.get("defaultBackend"), *paths]):
        if backend is not None and backend.port == USE_ANNOTATION and backend.service not in member.actions:
            raise AnnotationError(
                f"backend {backend.service} uses {PREFIX}actions.{backend.service}: not found"
            )
    return member


def plan(
    cluster: str,
    ingresses: Iterable[Obj],
    services: Iterable[Obj],
    slices: Sequence[Obj],
    pods: Iterable[Obj],
    classes: Iterable[Obj] = (),
) -> Plan:
    """The desired load balancers of the cluster's `alb` Ingresses."""
    classes = list(classes)
    by_service = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in services}
    pods_by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
    result = Plan()
    groups: dict[str, list[_Member]] = {}
    for ingress in ingresses:
        if not is_alb(ingress, classes):
            continue
        meta = ingress["metadata"]
        key = (meta["namespace"], meta["name"])
        stack = stack_of(ingress)
        if meta.get("deletionTimestamp"):
            result.leaving.setdefault(stack, []).append(key)
            continue
        try:
            member = _validated(ingress)
        except AnnotationError as err:
            result.warnings.append((*key, "FailedBuildModel", str(err)))
            result.refused.add(stack)
            continue
        if (annotation(ingress, "target-type") or "ip") != "ip":
            message = "target-type instance is not supported by the local cloud: using ip targets"
            result.warnings.append((*key, "UnsupportedTargetType", message))
        groups.setdefault(stack, []).append(member)
    for stack, members in sorted(groups.items()):
        if stack in result.refused:
            continue
        members.sort(key=lambda m: (m.order, *(m.ingress["metadata"][k] for k in ("namespace", "name"))))
        result.load_balancers.append(
            _load_balancer(cluster, stack, members, by_service, slices, pods_by_name, result)
        )
    return result


def _load_balancer(
    cluster: str,
    stack: str,
    members: list[_Member],
    services: Mapping[tuple[str, str], Obj],
    slices: Sequence[Obj],
    pods: Mapping[tuple[str, str], Obj],
    result: Plan,
) -> LoadBalancerSpec:
    first = members[0].ingress
    scheme_value = scheme(first)
    target_groups: dict[Backend, TargetGroupSpec] = {}
    rules: dict[int, list[RuleSpec]] = {}
    defaults: dict[int, ActionSpec] = {}

    def target_group(backend: Backend, ingress: Obj) -> bool:
        if backend in target_groups:
            return True
        meta = ingress["metadata"]
        service = services.get((backend.namespace, backend.service))
        service_port = None if service is None else _service_port(service, backend.port)
        if service is None or service_port is None:
            message = f"backend Service {backend.resource} not found"
            result.warnings.append((meta["namespace"], meta["name"], "FailedBuildModel", message))
            return False
        try:
            health = health_check(ingress, service)
            attributes = target_group_attributes(ingress, service)
        except AnnotationError as err:
            message = f"Service {backend.namespace}/{backend.service}: {err}"
            result.warnings.append((meta["namespace"], meta["name"], "FailedBuildModel", message))
            return False
        name = target_group_name(
            cluster, stack, backend, service_port.get("targetPort", service_port.get("port", ""))
        )
        port, found = targets(backend, service, slices, pods, READINESS_GATE_PREFIX + name)
        target_groups[backend] = TargetGroupSpec(name, backend, port, health, found, attributes)
        return True

    def action_of(backend: Backend, member: _Member) -> ActionSpec | None:
        """What a backend does: its action by annotation, or a forward to its Service; None when a
        Service it names is missing."""
        action = member.actions[backend.service] if backend.port == USE_ANNOTATION else forward(backend)
        resolved = [target_group(b, member.ingress) for b in action.backends]
        return action if all(resolved) else None

    for member in members:
        ingress = member.ingress
        namespace = ingress["metadata"]["namespace"]
        spec = ingress.get("spec") or {}
        default = _backend(namespace, spec.get("defaultBackend"))
        for _, port in member.ports:
            rules.setdefault(port, [])
            if default is not None and port not in defaults and (action := action_of(default, member)):
                defaults[port] = action
        for rule in spec.get("rules") or []:
            host = rule.get("host")
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = _backend(namespace, path.get("backend"))
                action = None if backend is None else action_of(backend, member)
                if action is None:
                    continue
                conditions: list[tuple[str, tuple[str, ...]]] = []
                if host:
                    conditions.append(("host-header", (host,)))
                conditions.append(("path-pattern", path_patterns(path.get("path"), path.get("pathType", ""))))
                for _, port in member.ports:
                    priority = len(rules[port]) + 1
                    rules[port].append(RuleSpec(priority, tuple(conditions), action))
    listeners = tuple(
        ListenerSpec("HTTP", port, tuple(rules[port]), defaults.get(port, NOT_FOUND_ACTION))
        for port in sorted(rules)
    )
    return LoadBalancerSpec(
        stack=stack,
        name=load_balancer_name(cluster, stack, scheme_value),
        scheme=scheme_value,
        subnets=_id_list(annotation(first, "subnets")),
        security_groups=_id_list(annotation(first, "security-groups")),
        listeners=listeners,
        target_groups=tuple(sorted(target_groups.values(), key=lambda t: t.name)),
        members=tuple((m.ingress["metadata"]["namespace"], m.ingress["metadata"]["name"]) for m in members),
    )
