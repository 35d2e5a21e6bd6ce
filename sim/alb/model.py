"""What an `alb` Ingress asks of ELBv2, as the AWS Load Balancer Controller reads it: pure functions from
the cluster's objects (Ingresses, IngressClasses, Services, EndpointSlices, Pods) to the desired load
balancers, with no I/O, so that annotations, rule building and group merging are testable on their own.

Honoured annotations (prefix `alb.ingress.kubernetes.io/`): `scheme`, `target-type` (`ip`; `instance`
is warned about and treated as `ip`), `group.name`, `group.order`, `listen-ports` (HTTP only),
`subnets`, `security-groups`, `healthcheck-path`, `healthcheck-interval-seconds`,
`healthcheck-timeout-seconds`, `healthy-threshold-count`, `unhealthy-threshold-count`, `success-codes`
(the health-check ones also on the backend Service, which wins). Ingresses of one group share one load
balancer; their rules are merged by `group.order`, then namespace/name, each Ingress's paths in spec
order. A target is a ready endpoint of the backend Service's EndpointSlices whose pod is Ready and not
being deleted (so a target goes as soon as its pod is marked for deletion, before the pod stops).
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
DEFAULT_LISTEN_PORTS = (("HTTP", 80),)
NOT_FOUND = {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not Found"}

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


@dataclass(frozen=True)
class RuleSpec:
    """One listener rule: ELBv2 conditions (API shape) forwarding to `backend`."""

    priority: int
    conditions: tuple[tuple[str, tuple[str, ...]], ...]  # (field, values): host-header, path-pattern
    backend: Backend

    def api_conditions(self) -> list[dict[str, Any]]:
        keys = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig"}
        return [{"Field": f, keys[f]: {"Values": list(values)}} for f, values in self.conditions]


@dataclass(frozen=True)
class ListenerSpec:
    protocol: str
    port: int
    rules: tuple[RuleSpec, ...]
    default: Backend | None  # None: a 404 fixed response


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
    #: stacks with an Ingress whose annotations were refused: what exists of them is left as it is
    refused: set[str] = field(default_factory=set)

    def deleted_stacks(self) -> set[str]:
        return set(self.leaving) - {lb.stack for lb in self.load_balancers}


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


def health_check(*sources: Obj) -> HealthCheck:
    """The health check from the annotations of `sources` (later ones win: Ingress, then Service)."""
    numbers = {
        "healthcheck-interval-seconds": "interval_seconds",
        "healthcheck-timeout-seconds": "timeout_seconds",
        "healthy-threshold-count": "healthy_threshold",
        "unhealthy-threshold-count": "unhealthy_threshold",
    }
    values: dict[str, Any] = {}
    for source in sources:
        if (path := annotation(source, "healthcheck-path")) is not None:
            if not path.startswith("/"):
                raise AnnotationError(f"healthcheck-path {path!r} does not start with /")
            values["path"] = path
        if (codes := annotation(source, "success-codes")) is not None:
            values["success_codes"] = codes
        for key, attr in numbers.items():
            if (raw := annotation(source, key)) is not None:
                try:
                    values[attr] = int(raw)
                except ValueError as err:
                    raise AnnotationError(f"{key} {raw!r} is not an integer") from err
    interval = values.get("interval_seconds", HealthCheck.interval_seconds)
    if "timeout_seconds" not in values:  # ELBv2 wants the timeout below the interval
        values["timeout_seconds"] = max(2, min(HealthCheck.timeout_seconds, interval - 1))
    if values["timeout_seconds"] >= interval:
        raise AnnotationError(f"healthcheck-timeout-seconds must be below the interval ({interval} s)")
    return HealthCheck(**values)


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


def target_group_name(cluster: str, stack: str, backend: Backend, port: int) -> str:
    digest = _digest(cluster, stack, backend.resource, port, "HTTP", "ip")
    return f"k8s-{_short(backend.namespace, 8)}-{_short(backend.service, 8)}-{digest}"


def _service_port(service: Obj, port: int | str) -> Obj | None:
    for entry in (service.get("spec") or {}).get("ports") or []:
        if (isinstance(port, int) and entry.get("port") == port) or entry.get("name") == port:
            return dict(entry)
    return None


def _ready(pod: Obj | None) -> bool:
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def targets(
    backend: Backend, service: Obj, slices: Sequence[Obj], pods: Mapping[tuple[str, str], Obj]
) -> tuple[int, frozenset[tuple[str, int]]]:
    """The target group's port and its targets: the ready endpoints (pod IP, pod port) of the Service
    port, as its EndpointSlices list them, whose pods are Ready and not terminating."""
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
            if not conditions.get("ready") or conditions.get("terminating"):
                continue
            ref = endpoint.get("targetRef") or {}
            if ref.get("kind") == "Pod" and not _ready(pods.get((backend.namespace, ref.get("name", "")))):
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
            member = _Member(ingress, group_order(ingress), listen_ports(ingress))
            scheme(ingress)
            health_check(ingress)
        except AnnotationError as err:
            result.warnings.append((*key, "FailedBuildModel", str(err)))
            result.refused.add(stack)
            continue
        if (annotation(ingress, "target-type") or "ip") != "ip":
            message = "target-type instance is not supported by the local cloud: using ip targets"
            result.warnings.append((*key, "UnsupportedTargetType", message))
        groups.setdefault(stack, []).append(member)
    for stack, members in sorted(groups.items()):
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
    defaults: dict[int, Backend] = {}

    def target_group(backend: Backend, ingress: Obj) -> bool:
        if backend in target_groups:
            return True
        meta = ingress["metadata"]
        service = services.get((backend.namespace, backend.service))
        if service is None or _service_port(service, backend.port) is None:
            message = f"backend Service {backend.resource} not found"
            result.warnings.append((meta["namespace"], meta["name"], "FailedBuildModel", message))
            return False
        port, found = targets(backend, service, slices, pods)
        health = health_check(ingress, service)
        name = target_group_name(cluster, stack, backend, port)
        target_groups[backend] = TargetGroupSpec(name, backend, port, health, found)
        return True

    for member in members:
        ingress = member.ingress
        namespace = ingress["metadata"]["namespace"]
        spec = ingress.get("spec") or {}
        default = _backend(namespace, spec.get("defaultBackend"))
        for _, port in member.ports:
            rules.setdefault(port, [])
            if default is not None and port not in defaults and target_group(default, ingress):
                defaults[port] = default
        for rule in spec.get("rules") or []:
            host = rule.get("host")
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = _backend(namespace, path.get("backend"))
                if backend is None or not target_group(backend, ingress):
                    continue
                conditions: list[tuple[str, tuple[str, ...]]] = []
                if host:
                    conditions.append(("host-header", (host,)))
                conditions.append(("path-pattern", path_patterns(path.get("path"), path.get("pathType", ""))))
                for _, port in member.ports:
                    priority = len(rules[port]) + 1
                    rules[port].append(RuleSpec(priority, tuple(conditions), backend))
    listeners = tuple(
        ListenerSpec("HTTP", port, tuple(rules[port]), defaults.get(port)) for port in sorted(rules)
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
