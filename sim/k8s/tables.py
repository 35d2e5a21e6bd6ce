"""`meta.k8s.io/v1` Table output: the columns `kubectl get` shows, per kind, as kube-apiserver 1.30 prints
them (`pkg/printers/internalversion/printers.go`; Role and ClusterRole have the apiserver's default table
convertor: Name and Created At), and Name/Age for the rest. As kube-apiserver's, every row carries the wide
(priority 1) cells too: kubectl drops them without `-o wide`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sim.k8s.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority (1 = only with -o wide)


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration: 45s, 3m10s, 25m, 5h3m, 20h, 3d4h, 12d, 2y..."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def age(obj: Obj) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - created).total_seconds())


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _pod_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in statuses:
        state = c.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        _name(obj),
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        age(obj),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"0/{len(gates)}" if gates else "<none>",
    ]


def _images(obj: Obj) -> tuple[str, str]:
    containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(obj: Obj) -> str:
    sel = (obj.get("spec") or {}).get("selector") or {}
    labels = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
    text = ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str))
    return text or "<none>"


def _deployment_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _images(obj)
    return [
        _name(obj),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(obj),
        names,
        images,
        _selector(obj),
    ]


def _replicaset_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _images(obj)
    return [
        _name(obj),
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(obj),
        names,
        images,
        _selector(obj),
    ]


def _statefulset_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _images(obj)
    return [
        _name(obj),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        age(obj),
        names,
        images,
    ]


def _service_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    )
    ports = []
    for p in spec.get("ports") or []:
        text = str(p.get("port"))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>"
    return [
        _name(obj),
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        age(obj),
        selector,
    ]


def _node_row(obj: Obj) -> list[Any]:
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    if (obj.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = obj["metadata"].get("labels") or {}
    roles = sorted(
        k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        _name(obj),
        state,
        ",".join(roles) or "<none>",
        age(obj),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _namespace_row(obj: Obj) -> list[Any]:
    return [_name(obj), (obj.get("status") or {}).get("phase", "Active"), age(obj)]


def _hpa_targets(spec: Obj, status: Obj) -> str:
    """kubectl's Targets column: `cpu: 45%/70%` per Resource metric, the first two, then `+ N more...`."""
    current = {
        (m.get("resource") or {}).get("name"): (m.get("resource") or {}).get("current") or {}
        for m in status.get("currentMetrics") or []
        if m.get("type") == "Resource"
    }
    parts = []
    for metric in spec.get("metrics") or []:
        resource = metric.get("resource") or {}
        target, now = resource.get("target") or {}, current.get(resource.get("name")) or {}
        if metric.get("type") != "Resource":
            parts.append("<unknown>/<unknown>")
        elif "averageUtilization" in target:
            seen = f"{now['averageUtilization']}%" if "averageUtilization" in now else "<unknown>"
            parts.append(f"{resource.get('name')}: {seen}/{target['averageUtilization']}%")
        else:
            seen = str(now.get("averageValue", "<unknown>"))
            parts.append(f"{resource.get('name')}: {seen}/{target.get('averageValue', '<unknown>')}")
    if not parts:
        return "<none>"
    more = f" + {len(parts) - 2} more..." if len(parts) > 2 else ""
    return ", ".join(parts[:2]) + more


def _hpa_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(spec, status),
        spec.get("minReplicas", 1),
        spec.get("maxReplicas", 0),
        status.get("currentReplicas", 0),
        age(obj),
    ]


def _configmap_row(obj: Obj) -> list[Any]:
    return [_name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age(obj)]


def _secret_row(obj: Obj) -> list[Any]:
    return [_name(obj), obj.get("type", "Opaque"), len(obj.get("data") or {}), age(obj)]


def _host_port(host: str, port: Any) -> str:
    """Go's net.JoinHostPort: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _with_more(items: list[str], count: int, most: int = 3) -> str:
    """The first `most` of `count` items, then `+ N more...` (kube-apiserver's lists in cells)."""
    text = ",".join(items[:most])
    return f"{text} + {count - most} more..." if count > most else text


def _endpoints_row(obj: Obj) -> list[Any]:
    """formatEndpoints: for each subset, each port, each ready address; an address alone when the subset
    has no ports (a headless Service's); `<none>` only without subsets."""
    subsets = obj.get("subsets") or []
    addresses = []
    for subset in subsets:
        ips = [str(a.get("ip", "")) for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            addresses.extend(ips)
        for port in ports:
            addresses.extend(_host_port(ip, port.get("port", 0)) for ip in ips)
    text = _with_more(addresses, len(addresses)) if subsets else "<none>"
    return [_name(obj), text, age(obj)]


def format_label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: the selector's requirements sorted by key (`k=v`, `k in (a,b)`,
    `k notin (a,b)`, `k`, `!k`), `<none>` when it selects everything."""
    requirements: list[tuple[str, str]] = []
    for key, value in ((selector or {}).get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expression in (selector or {}).get("matchExpressions") or []:
        key, operator = str(expression.get("key", "")), expression.get("operator")
        values = sorted(str(v) for v in expression.get("values") or [])
        if operator == "In":
            requirements.append((key, f"{key} in ({','.join(values)})"))
        elif operator == "NotIn":
            requirements.append((key, f"{key} notin ({','.join(values)})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            return "<error>"
    return ",".join(text for _, text in sorted(requirements, key=lambda r: r[0])) or "<none>"


def _int_or_string(value: Any) -> str:
    """intstr.IntOrString.String(): `2` or `50%`."""
    return str(value)


def _pdb_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    return [
        _name(obj),
        _int_or_string(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A",
        _int_or_string(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A",
        int((obj.get("status") or {}).get("disruptionsAllowed", 0)),
        age(obj),
    ]


def _serviceaccount_row(obj: Obj) -> list[Any]:
    return [_name(obj), len(obj.get("secrets") or []), age(obj)]


def _endpointslice_row(obj: Obj) -> list[Any]:
    """formatDiscoveryPorts and formatDiscoveryEndpoints: the first 3 ports (number, else name, else `*`)
    and addresses, `<unset>` for none."""
    ports = [
        str(p["port"]) if p.get("port") is not None else str(p["name"]) if p.get("name") is not None else "*"
        for p in obj.get("ports") or []
    ]
    addresses = [str(a) for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _name(obj),
        str(obj.get("addressType", "")),
        _with_more(ports, len(ports)) or "<unset>",
        _with_more(addresses, len(addresses)) or "<unset>",
        age(obj),
    ]


def _networkpolicy_row(obj: Obj) -> list[Any]:
    return [_name(obj), format_label_selector((obj.get("spec") or {}).get("podSelector") or {}), age(obj)]


def _lease_row(obj: Obj) -> list[Any]:
    return [_name(obj), str((obj.get("spec") or {}).get("holderIdentity") or ""), age(obj)]


def _ingressclass_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    parameters = "<none>"
    if spec.get("parameters"):
        ref = spec["parameters"]
        group = f".{ref['apiGroup']}" if ref.get("apiGroup") is not None else ""
        parameters = f"{ref.get('kind', '')}{group}/{ref.get('name', '')}"
    return [_name(obj), str(spec.get("controller", "")), parameters, age(obj)]


def _created_at_row(obj: Obj) -> list[Any]:
    """The apiserver's default table convertor: the creation time in RFC 3339, UTC."""
    return [_name(obj), (obj.get("metadata") or {}).get("creationTimestamp") or "0001-01-01T00:00:00Z"]


def _ingress_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    hosts = ",".join(r["host"] for r in spec.get("rules") or [] if r.get("host")) or "*"
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(i.get("hostname") or i.get("ip", "") for i in ingress)
    ports = "80, 443" if spec.get("tls") else "80"
    return [_name(obj), spec.get("ingressClassName") or "<none>", hosts, address, ports, age(obj)]


def _binding_row(obj: Obj) -> list[Any]:
    """printRoleBinding: with rbac.SubjectsStrings's users, groups and service accounts (`ns/name`)."""
    ref = obj.get("roleRef") or {}
    subjects: dict[str, list[str]] = {"User": [], "Group": [], "ServiceAccount": []}
    for subject in obj.get("subjects") or []:
        kind, name = subject.get("kind"), str(subject.get("name", ""))
        if kind in ("User", "Group"):
            subjects[kind].append(name)
        elif kind == "ServiceAccount":
            subjects[kind].append(f"{subject.get('namespace', '')}/{name}")
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age(obj),
        ", ".join(subjects["User"]),
        ", ".join(subjects["Group"]),
        ", ".join(subjects["ServiceAccount"]),
    ]


_BINDING_COLUMNS: list[Column] = [
    ("Name", "string", 0),
    ("Role", "string", 0),
    ("Age", "string", 0),
    ("Users", "string", 1),
    ("Groups", "string", 1),
    ("ServiceAccounts", "string", 1),
]
_CREATED_AT_COLUMNS: list[Column] = [("Name", "string", 0), ("Created At", "date", 0)]


def _since(stamp: Any) -> str:
    """translateTimestampSince of a Time (`...T12:00:00Z`) or a MicroTime (`...T12:00:00.123456Z`)."""
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        moment = datetime.strptime(stamp.split(".")[0].removesuffix("Z") + "Z", "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - moment.replace(tzinfo=UTC)).total_seconds())


def _event_row(obj: Obj) -> list[Any]:
    """printEvent: last seen (the last timestamp, else the first, else the event time; a series' last
    observation), then, wide, the involved field, the source, the first seen, the count and the name."""
    involved = obj.get("involvedObject") or {}
    first = _since(obj.get("firstTimestamp") or obj.get("eventTime"))
    last = _since(obj["lastTimestamp"]) if obj.get("lastTimestamp") else first
    count = int(obj.get("count") or 0)
    series = obj.get("series")
    if series:
        last, count = _since(series.get("lastObservedTime")), int(series.get("count") or 0)
    elif count == 0:
        count = 1  # a singleton event of the events.k8s.io API
    kind, name = str(involved.get("kind", "")).lower(), involved.get("name")
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return [
        last,
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{kind}/{name}" if name else kind,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        str(obj.get("message", "")).strip(),
        first,
        count,
        _name(obj),
    ]


def _generic_row(obj: Obj) -> list[Any]:
    return [_name(obj), age(obj)]


TABLES: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "Pod": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod_row,
    ),
    "Deployment": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deployment_row,
    ),
    "ReplicaSet": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _replicaset_row,
    ),
    "StatefulSet": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        _statefulset_row,
    ),
    "Service": (
        [
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        _service_row,
    ),
    "Node": (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node_row,
    ),
    "Namespace": ([("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)], _namespace_row),
    "HorizontalPodAutoscaler": (
        [
            ("Name", "string", 0),
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "string", 0),
            ("Replicas", "string", 0),
            ("Age", "string", 0),
        ],
        _hpa_row,
    ),
    "ConfigMap": ([("Name", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)], _configmap_row),
    "Secret": (
        [("Name", "string", 0), ("Type", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        _secret_row,
    ),
    "Endpoints": ([("Name", "string", 0), ("Endpoints", "string", 0), ("Age", "string", 0)], _endpoints_row),
    "Ingress": (
        [
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ],
        _ingress_row,
    ),
    "RoleBinding": (_BINDING_COLUMNS, _binding_row),
    "ClusterRoleBinding": (_BINDING_COLUMNS, _binding_row),
    "Role": (_CREATED_AT_COLUMNS, _created_at_row),
    "ClusterRole": (_CREATED_AT_COLUMNS, _created_at_row),
    "PodDisruptionBudget": (
        [
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        _pdb_row,
    ),
    "ServiceAccount": (
        [("Name", "string", 0), ("Secrets", "string", 0), ("Age", "string", 0)],
        _serviceaccount_row,
    ),
    "EndpointSlice": (
        [
            ("Name", "string", 0),
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ],
        _endpointslice_row,
    ),
    "NetworkPolicy": (
        [("Name", "string", 0), ("Pod-Selector", "string", 0), ("Age", "string", 0)],
        _networkpolicy_row,
    ),
    "Lease": ([("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)], _lease_row),
    "IngressClass": (
        [
            ("Name", "string", 0),
            ("Controller", "string", 0),
            ("Parameters", "string", 0),
            ("Age", "string", 0),
        ],
        _ingressclass_row,
    ),
    "Event": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ],
        _event_row,
    ),
}
GENERIC: tuple[list[Column], Callable[[Obj], list[Any]]] = (
    [("Name", "string", 0), ("Age", "string", 0)],
    _generic_row,
)


def column_definitions(rt: ResourceType) -> list[Obj]:
    columns, _ = TABLES.get(rt.kind, GENERIC)
    return [
        {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": priority,
        }
        for name, kind, priority in columns
    ]


def _partial(obj: Obj) -> Obj:
    """What `includeObject=Metadata` returns: the object's metadata only."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    rt: ResourceType,
    items: list[Obj],
    metadata: Obj,
    include_object: str = "Metadata",
    with_columns: bool = True,
) -> Obj:
    _, row = TABLES.get(rt.kind, GENERIC)
    rows = []
    for obj in items:
        entry: Obj = {"cells": row(obj)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = _partial(obj)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(rt) if with_columns else [],
        "rows": rows,
    }
