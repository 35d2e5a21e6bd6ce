"""The parts of a Pod the kubelet acts on, read from a Kubernetes-shaped dict (a model, no I/O).

Environment resolution follows the kubelet: `$(VAR)` in a value, command or arg expands to an earlier
variable (`$$` escapes, an undefined reference stays as written); `valueFrom.fieldRef` reads the pod;
`configMapKeyRef`/`secretKeyRef` and `envFrom` read through a `ConfigSource` (the API server, later).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kube.quantity import memory_bytes

DEFAULT_GRACE = 30.0
REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """The pod's configuration cannot be satisfied (CreateContainerConfigError)."""


class ConfigSource(Protocol):
    def data(self, kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
        """The data of ConfigMap or Secret (`kind`) `name` (a Secret's values decoded), None if absent."""


class EventRecorder(Protocol):
    def __call__(self, pod: PodSpec, kind: str, reason: str, message: str) -> None:
        """Record an Event (`kind` Normal or Warning) about `pod`, as the kubelet of its node."""


@dataclass(frozen=True)
class Handler:
    """What a probe or a preStop hook does: one of exec, httpGet, tcpSocket (or, for a hook, sleep)."""

    exec_command: list[str] | None = None
    sleep_seconds: float | None = None
    http_path: str | None = None
    http_scheme: str = "HTTP"
    http_headers: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    port: int | str | None = None
    tcp: bool = False

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Handler:
        if "exec" in data:
            return cls(exec_command=[str(a) for a in data["exec"].get("command") or []])
        if "httpGet" in data:
            get = data["httpGet"]
            headers = {str(h["name"]): str(h["value"]) for h in get.get("httpHeaders") or []}
            return cls(
                http_path=str(get.get("path") or "/"),
                http_scheme=str(get.get("scheme") or "HTTP").upper(),
                http_headers=headers,
                host=get.get("host"),
                port=get.get("port"),
            )
        if "tcpSocket" in data:
            return cls(tcp=True, host=data["tcpSocket"].get("host"), port=data["tcpSocket"].get("port"))
        if "sleep" in data:
            return cls(sleep_seconds=float(data["sleep"].get("seconds") or 0))
        raise ConfigError(f"handler needs exec, httpGet, tcpSocket or sleep: {dict(data)}")


@dataclass(frozen=True)
class Probe:
    handler: Handler
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> Probe | None:
        if not data:
            return None
        return cls(
            handler=Handler.parse(data),
            initial_delay=float(data.get("initialDelaySeconds", 0)),
            period=float(data.get("periodSeconds", 10)),
            timeout=float(data.get("timeoutSeconds", 1)),
            success_threshold=int(data.get("successThreshold", 1)),
            failure_threshold=int(data.get("failureThreshold", 3)),
            termination_grace=(
                float(data["terminationGracePeriodSeconds"])
                if "terminationGracePeriodSeconds" in data
                else None
            ),
        )


@dataclass(frozen=True)
class Volume:
    name: str
    kind: str  # "ConfigMap", "Secret" or "emptyDir"
    source: str = ""
    items: tuple[tuple[str, str], ...] = ()
    optional: bool = False

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Volume:
        name = str(data["name"])
        for kind, key, name_field in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
            if key in data:
                body = data[key] or {}
                items = tuple((str(i["key"]), str(i["path"])) for i in body.get("items") or [])
                return cls(name, kind, str(body.get(name_field, "")), items, bool(body.get("optional")))
        if "emptyDir" in data:
            return cls(name, "emptyDir")
        raise ConfigError(f"volume {name}: only configMap, secret and emptyDir volumes are supported")


@dataclass(frozen=True)
class Mount:
    volume: str
    mount_path: str
    sub_path: str = ""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Mount:
        return cls(str(data["name"]), str(data["mountPath"]), str(data.get("subPath") or ""))


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: list[str] | None
    args: list[str] | None
    env: list[dict[str, Any]]
    env_from: list[dict[str, Any]]
    working_dir: str | None
    ports: dict[str, int]
    readiness: Probe | None
    liveness: Probe | None
    startup: Probe | None
    memory_limit: int | None
    pre_stop: Handler | None
    volume_mounts: list[Mount] = field(default_factory=list)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ContainerSpec:
        limits = (data.get("resources") or {}).get("limits") or {}
        pre_stop = ((data.get("lifecycle") or {}).get("preStop")) or None
        return cls(
            name=str(data["name"]),
            image=str(data["image"]),
            command=[str(a) for a in data["command"]] if data.get("command") else None,
            args=[str(a) for a in data["args"]] if data.get("args") is not None else None,
            env=list(data.get("env") or []),
            env_from=list(data.get("envFrom") or []),
            working_dir=data.get("workingDir"),
            ports={str(p["name"]): int(p["containerPort"]) for p in data.get("ports") or [] if p.get("name")},
            readiness=Probe.parse(data.get("readinessProbe")),
            liveness=Probe.parse(data.get("livenessProbe")),
            startup=Probe.parse(data.get("startupProbe")),
            memory_limit=memory_bytes(limits["memory"]) if "memory" in limits else None,
            pre_stop=Handler.parse(pre_stop) if pre_stop else None,
            volume_mounts=[Mount.parse(m) for m in data.get("volumeMounts") or []],
        )

    def port_number(self, port: int | str | None) -> int:
        """A probe's port: a number, or the name of one of the container's ports."""
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            return int(port)
        if port in self.ports:
            return self.ports[str(port)]
        raise ConfigError(f"container {self.name}: no port named {port!r}")


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    node_name: str
    service_account: str
    restart_policy: str
    grace: float
    containers: list[ContainerSpec]
    volumes: list[Volume] = field(default_factory=list)
    service_links: bool = True  # enableServiceLinks

    @classmethod
    def parse(cls, pod: Mapping[str, Any]) -> PodSpec:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        grace = spec.get("terminationGracePeriodSeconds")
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace") or "default"),
            uid=str(meta.get("uid") or meta.get("name", "")),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            node_name=str(spec.get("nodeName") or ""),
            service_account=str(spec.get("serviceAccountName") or "default"),
            restart_policy=str(spec.get("restartPolicy") or "Always"),
            grace=DEFAULT_GRACE if grace is None else float(grace),
            containers=[ContainerSpec.parse(c) for c in spec.get("containers") or []],
            volumes=[Volume.parse(v) for v in spec.get("volumes") or []],
            service_links=spec.get("enableServiceLinks") is not False,
        )


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables expand, `$$` is `$`, the rest stays."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return REFERENCE.sub(replace, text)


def field_value(pod: PodSpec, path: str, pod_ip: str) -> str:
    """The value of a `fieldRef.fieldPath`."""
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        source = pod.labels if match.group(1) == "labels" else pod.annotations
        return source.get(match.group(2), "")
    raise ConfigError(f"unsupported fieldRef {path!r}")


def container_env(
    pod: PodSpec,
    container: ContainerSpec,
    pod_ip: str,
    config: ConfigSource | None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables the pod declares for `container` (over `base`, e.g. service links), resolved."""
    env: dict[str, str] = dict(base or {})

    def lookup(kind: str, ref: Mapping[str, Any]) -> Mapping[str, str] | None:
        found = config.data(kind, pod.namespace, str(ref.get("name", ""))) if config else None
        if found is None and not ref.get("optional"):
            raise ConfigError(f"{kind.lower()} {ref.get('name')!r} not found")
        return found

    for source in container.env_from:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                prefix = str(source.get("prefix") or "")
                env.update({prefix + k: v for k, v in (lookup(kind, source[key]) or {}).items()})
    for item in container.env:
        name = str(item["name"])
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        value_from = item["valueFrom"]
        if "fieldRef" in value_from:
            env[name] = field_value(pod, str(value_from["fieldRef"]["fieldPath"]), pod_ip)
            continue
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in value_from:
                ref = value_from[key]
                data = lookup(kind, ref)
                if data is not None and str(ref["key"]) in data:
                    env[name] = data[str(ref["key"])]
                elif not ref.get("optional"):
                    raise ConfigError(f"{kind.lower()} {ref.get('name')!r} has no key {ref['key']!r}")
                break
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(value_from)}")
    return env


def expand_all(values: Sequence[str] | None, env: Mapping[str, str]) -> list[str] | None:
    return None if values is None else [expand(v, env) for v in values]
