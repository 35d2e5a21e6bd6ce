"""`python -m sim.standins.cluster_autoscaler --api-server URL --aws-endpoint URL --listen IP -- ARGS...`:
what the cluster-autoscaler image's stand-in runs (the autoscaler is a Go program with no Debian package).

It applies cluster-autoscaler 1.30's documented rules (its FAQ) through the same APIs, every
`--scan-interval`: the Kubernetes API it is given (pods, nodes, disruption budgets; evictions, taints,
Events) and, for the node groups, EKS in the AWS emulator with boto3, where the real one drives the node
groups' Auto Scaling groups (the local cloud has none: the EKS binding makes a node group's nodes follow
its `scalingConfig.desiredSize`).

- Discovery: the EKS node groups whose tags carry every key (and value, where given) of
  `--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/<cluster>`;
  a group is modelled by its first instance type (`sim.aws.instance_types`: allocatable cpu, memory, pods),
  its labels and taints; its nodes are those labelled `eks.amazonaws.com/nodegroup=<group>`.
- Scale-up: pods Pending with `PodScheduled=False` (reason `Unschedulable`) that fit neither the free room
  of the Ready nodes nor the nodes already on their way (desired size above the nodes registered) are
  packed, first fit, onto new nodes of each group that has room below its max and whose node fits them
  (requests, node selector and required node affinity, taints); the expander (`random`, `most-pods`,
  `least-waste`) picks the group, `--balance-similar-node-groups` spreads the new nodes over the groups of
  the same instance type and labels; `UpdateNodegroupConfig` raises the desired size (never above max).
  Pods it helps get a `TriggeredScaleUp` Event, pods no group can take `NotTriggerScaleUp`. A refused
  scale-up backs the group off for `--initial-node-group-backoff-duration`.
- Scale-down: a node of a group above its min whose pods request less than
  `--scale-down-utilization-threshold` of its allocatable (the larger of cpu and memory), and whose pods
  can all move, is unneeded; unneeded for `--scale-down-unneeded-time`, it is removed: tainted
  `ToBeDeletedByClusterAutoscaler` (NoSchedule), its pods evicted through the eviction API (so each
  PodDisruptionBudget is honoured; a budget that still refuses after `--max-pod-eviction-time` fails the
  scale-down), then the group's desired size lowered by one (the binding removes the tainted node; the real
  autoscaler calls TerminateInstanceInAutoScalingGroup for it). A pod can move when it has a controller
  (no bare pods), is not annotated `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"` (`"true"`
  lets any pod go), is not a kube-system pod without a disruption budget (`--skip-nodes-with-system-pods`),
  has no emptyDir or hostPath volume (`--skip-nodes-with-local-storage`), its budget allows the disruption,
  and the other nodes have room for it; DaemonSet and mirror pods stay. One node at a time; none for
  `--scale-down-delay-after-add` after a scale-up, nor for `--scale-down-delay-after-failure` after a
  failed one, nor while nodes are still coming.

Its flags are the real one's (Go durations: `10s`, `10m0s`); any flag it does not implement is refused in
one line. It serves `/health-check` and `/metrics` (cluster_autoscaler_* gauges and counters) on
`--address`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from quart import Quart, Response

from kube.requests import Resources, allocatable, pod_requests
from sim.aws.instance_types import node_capacity
from sim.serving import serve_until_signalled

log = logging.getLogger("cluster-autoscaler")

LOCAL_API_TOKEN = "shopstack-local"  # what the local API's kubeconfigs carry (sim/k8s/kubeconfig.py)
GRACEFUL_TIMEOUT_SECONDS = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
ZONE_LABEL = "topology.kubernetes.io/zone"
#: the taint a node being removed carries (upstream's `ToBeDeletedByClusterAutoscaler`)
TO_BE_DELETED = "ToBeDeletedByClusterAutoscaler"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SYSTEM_NAMESPACE = "kube-system"
POLL_SECONDS = 1.0
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2})
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
EXPANDERS = ("random", "most-pods", "least-waste")


class ConfigError(Exception):
    """Flags the stand-in does not implement, or bad values; one line."""


def go_duration(text: str) -> float:
    """Seconds of a Go duration (`10s`, `1m30s`, `0.5s`, `0`)."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ConfigError(f"{text!r} is not a duration (such as 10s, 10m0s, 1h)")
    return total


def _bool(flag: str, value: str) -> bool:
    if value.lower() in ("true", "1", "t"):
        return True
    if value.lower() in ("false", "0", "f"):
        return False
    raise ConfigError(f"--{flag}={value}: not a boolean")


@dataclass(frozen=True)
class Options:
    """The flags the stand-in implements, with upstream's defaults."""

    #: the tags a node group must carry: key, and the value where the flag gives one
    discovery: tuple[tuple[str, str | None], ...]
    scan_interval: float = 10.0
    scale_down_enabled: bool = True
    scale_down_unneeded: float = 600.0
    scale_down_delay_after_add: float = 600.0
    scale_down_delay_after_failure: float = 180.0
    scale_down_utilization_threshold: float = 0.5
    expander: str = "random"
    balance_similar_node_groups: bool = False
    skip_nodes_with_local_storage: bool = True
    skip_nodes_with_system_pods: bool = True
    max_graceful_termination: float = 600.0
    max_pod_eviction_time: float = 120.0
    initial_node_group_backoff: float = 300.0
    port: int = 8085
    namespace: str = SYSTEM_NAMESPACE


#: flag -> (Options field, parser); the logging flags are taken and ignored
_DURATIONS = {
    "scan-interval": "scan_interval",
    "scale-down-unneeded-time": "scale_down_unneeded",
    "scale-down-delay-after-add": "scale_down_delay_after_add",
    "scale-down-delay-after-failure": "scale_down_delay_after_failure",
    "max-pod-eviction-time": "max_pod_eviction_time",
    "initial-node-group-backoff-duration": "initial_node_group_backoff",
}
_BOOLS = {
    "scale-down-enabled": "scale_down_enabled",
    "balance-similar-node-groups": "balance_similar_node_groups",
    "skip-nodes-with-local-storage": "skip_nodes_with_local_storage",
    "skip-nodes-with-system-pods": "skip_nodes_with_system_pods",
}
_IGNORED = ("v", "stderrthreshold", "logtostderr", "alsologtostderr")


def parse_options(args: Sequence[str]) -> Options:
    """cluster-autoscaler's own flags, those the stand-in implements."""
    values: dict[str, Any] = {}
    discovery: list[tuple[str, str | None]] = []
    for arg in args:
        if not arg.startswith("--"):
            raise ConfigError(f"{arg!r}: give cluster-autoscaler's flags as --flag=value")
        flag, equals, value = arg[2:].partition("=")
        if flag in _BOOLS:
            values[_BOOLS[flag]] = _bool(flag, value) if equals else True
        elif not equals:
            raise ConfigError(f"--{flag} needs a value (--{flag}=...)")
        elif flag in _DURATIONS:
            values[_DURATIONS[flag]] = go_duration(value)
        elif flag == "cloud-provider":
            if value != "aws":
                raise ConfigError(f"--cloud-provider={value}: the stand-in implements aws only")
        elif flag == "node-group-auto-discovery":
            if not value.startswith("asg:tag="):
                raise ConfigError(
                    f"--node-group-auto-discovery={value}: the stand-in implements asg:tag=... only"
                )
            for item in value.removeprefix("asg:tag=").split(","):
                key, has_value, wanted = item.partition("=")
                if not key:
                    raise ConfigError(f"--node-group-auto-discovery={value}: an empty tag key")
                discovery.append((key, wanted if has_value else None))
        elif flag == "scale-down-utilization-threshold":
            try:
                values["scale_down_utilization_threshold"] = float(value)
            except ValueError:
                raise ConfigError(f"--{flag}={value}: not a number") from None
        elif flag == "expander":
            if value not in EXPANDERS:
                raise ConfigError(f"--expander={value}: the stand-in implements {', '.join(EXPANDERS)} only")
            values["expander"] = value
        elif flag == "max-graceful-termination-sec":
            try:
                values["max_graceful_termination"] = float(int(value))
            except ValueError:
                raise ConfigError(f"--{flag}={value}: not a whole number") from None
        elif flag == "address":
            port = value.rpartition(":")[2]
            if not port.isdigit():
                raise ConfigError(f"--address={value}: give :PORT")
            values["port"] = int(port)
        elif flag == "namespace":
            values["namespace"] = value
        elif flag in _IGNORED:
            continue
        else:
            raise ConfigError(f"--{flag} is not implemented by the cluster-autoscaler stand-in")
    if not discovery:
        raise ConfigError("the stand-in finds its node groups by tags only: give --node-group-auto-discovery")
    if values.get("scan_interval", 1.0) <= 0:
        raise ConfigError("--scan-interval must be more than 0s")
    return Options(discovery=tuple(discovery), **values)


# ---------------------------------------------------------------------------------------------- resources


def utilization(node: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> float:
    """The larger of the cpu and memory share of the node's allocatable its pods request."""
    alloc = allocatable((node.get("status") or {}).get("allocatable") or {})
    used = Resources()
    for pod in pods:
        asked = pod_requests(pod)
        used.cpu += asked.cpu
        used.memory += asked.memory
    shares = [
        float(used.cpu / alloc.cpu) if alloc.cpu else 0.0,
        used.memory / alloc.memory if alloc.memory else 0.0,
    ]
    return max(shares)


# ---------------------------------------------------------------------------------------------- pods


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def pod_key(pod: Mapping[str, Any]) -> str:
    return f"{meta(pod).get('namespace', '')}/{meta(pod).get('name', '')}"


def unschedulable(pod: Mapping[str, Any]) -> bool:
    """Pending, unbound, and the scheduler found no node for it."""
    status, spec = pod.get("status") or {}, pod.get("spec") or {}
    if (
        spec.get("nodeName")
        or status.get("phase") not in (None, "Pending")
        or meta(pod).get("deletionTimestamp")
    ):
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


def active(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def owner_kind(pod: Mapping[str, Any]) -> str | None:
    owners = meta(pod).get("ownerReferences") or []
    controller = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    return str(controller.get("kind")) if controller else None


def is_daemon_or_mirror(pod: Mapping[str, Any]) -> bool:
    return owner_kind(pod) == "DaemonSet" or MIRROR_ANNOTATION in (meta(pod).get("annotations") or {})


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator, values = (
        expression.get("key", ""),
        expression.get("operator"),
        expression.get("values") or [],
    )
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


def selects_node(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """The pod's node selector and required node affinity admit a node with `labels`."""
    spec = pod.get("spec") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    if not required:
        return True
    return any(
        all(_expression_matches(e, labels) for e in term.get("matchExpressions") or []) for term in required
    )


def tolerates(pod: Mapping[str, Any], taints: Sequence[Mapping[str, Any]]) -> bool:
    """The pod tolerates every NoSchedule and NoExecute taint of `taints`."""
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        tolerated = False
        for toleration in (pod.get("spec") or {}).get("tolerations") or []:
            if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
                continue
            key, operator = toleration.get("key"), toleration.get("operator", "Equal")
            if (not key and operator == "Exists") or (
                key == taint.get("key")
                and (operator == "Exists" or toleration.get("value", "") == taint.get("value", ""))
            ):
                tolerated = True
                break
        if not tolerated:
            return False
    return True


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions); an empty one selects everything."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or [])


def budgets_of(pod: Mapping[str, Any], budgets: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    labels = meta(pod).get("labels") or {}
    return [
        b
        for b in budgets
        if meta(b).get("namespace") == meta(pod).get("namespace")
        and selector_matches((b.get("spec") or {}).get("selector"), labels)
    ]


def blocker(pod: Mapping[str, Any], budgets: Sequence[Mapping[str, Any]], options: Options) -> str | None:
    """Why `pod` keeps its node (upstream's rules), or None when it can be moved."""
    annotations = meta(pod).get("annotations") or {}
    safe = str(annotations.get(SAFE_TO_EVICT, "")).lower()
    if safe == "false":
        return f'pod {pod_key(pod)} is annotated {SAFE_TO_EVICT}: "false"'
    if safe == "true":
        return None
    if owner_kind(pod) is None:
        return f"pod {pod_key(pod)} has no controller (a bare pod)"
    mine = budgets_of(pod, budgets)
    if options.skip_nodes_with_system_pods and meta(pod).get("namespace") == SYSTEM_NAMESPACE and not mine:
        return f"pod {pod_key(pod)} is a kube-system pod without a PodDisruptionBudget"
    if options.skip_nodes_with_local_storage:
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if "emptyDir" in volume or "hostPath" in volume:
                return f"pod {pod_key(pod)} has local storage (volume {volume.get('name')})"
    return None


def budgets_allow(pods: Sequence[Mapping[str, Any]], budgets: Sequence[Mapping[str, Any]]) -> str | None:
    """None when every budget covering `pods` allows evicting all of them; else why not."""
    counts: dict[str, int] = {}
    by_name: dict[str, Mapping[str, Any]] = {}
    for pod in pods:
        for budget in budgets_of(pod, budgets):
            name = f"{meta(budget).get('namespace')}/{meta(budget).get('name')}"
            counts[name] = counts.get(name, 0) + 1
            by_name[name] = budget
    for name, count in sorted(counts.items()):
        allowed = int((by_name[name].get("status") or {}).get("disruptionsAllowed") or 0)
        if allowed < count:
            return (
                f"PodDisruptionBudget {name} allows {allowed} disruption(s), the node has {count} of its pods"
            )
    return None


# ---------------------------------------------------------------------------------------------- groups


@dataclass
class Group:
    """A discovered node group, modelled by its first instance type."""

    cluster: str
    name: str
    instance_type: str
    min_size: int
    max_size: int
    desired: int
    labels: dict[str, str]
    taints: list[dict[str, Any]]
    status: str = "ACTIVE"

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.name}"

    def template(self) -> Resources | None:
        """A new node's allocatable, or None for an instance type the local cloud does not know."""
        capacity = node_capacity(self.instance_type)
        return None if capacity is None else allocatable(capacity)

    def template_labels(self) -> dict[str, str]:
        return {
            **self.labels,
            NODEGROUP_LABEL: self.name,
            "node.kubernetes.io/instance-type": self.instance_type,
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
        }

    def template_taints(self) -> list[dict[str, Any]]:
        effects = {
            "NO_SCHEDULE": "NoSchedule",
            "NO_EXECUTE": "NoExecute",
            "PREFER_NO_SCHEDULE": "PreferNoSchedule",
        }
        return [{**t, "effect": effects.get(str(t.get("effect")), t.get("effect"))} for t in self.taints]

    def similar(self, other: Group) -> bool:
        """Upstream's 'similar node groups': same instance type, same labels but the group's and zone's."""
        ignored = {NODEGROUP_LABEL, ZONE_LABEL}

        def comparable(labels: Mapping[str, str]) -> dict[str, str]:
            return {k: v for k, v in labels.items() if k not in ignored}

        return self.instance_type == other.instance_type and comparable(self.labels) == comparable(
            other.labels
        )


def discovered(tags: Mapping[str, str], discovery: Sequence[tuple[str, str | None]]) -> bool:
    return all(key in tags and (value is None or tags[key] == value) for key, value in discovery)


class Eks:
    """The node groups through EKS in the AWS emulator (blocking: call in a worker thread)."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.client = boto3.client("eks", endpoint_url=endpoint, region_name=region, config=CLIENT_CONFIG)

    def groups(self, discovery: Sequence[tuple[str, str | None]]) -> list[Group]:
        found: list[Group] = []
        for cluster in self._all(self.client.get_paginator("list_clusters").paginate(), "clusters"):
            pages = self.client.get_paginator("list_nodegroups").paginate(clusterName=cluster)
            for name in self._all(pages, "nodegroups"):
                try:
                    group = self.client.describe_nodegroup(clusterName=cluster, nodegroupName=name)[
                        "nodegroup"
                    ]
                except ClientError as err:
                    if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                        continue
                    raise
                if not discovered(group.get("tags") or {}, discovery):
                    continue
                scaling = group.get("scalingConfig") or {}
                found.append(
                    Group(
                        cluster=cluster,
                        name=name,
                        instance_type=str((group.get("instanceTypes") or ["t3.medium"])[0]),
                        min_size=int(scaling.get("minSize", 0)),
                        max_size=int(scaling.get("maxSize", 0)),
                        desired=int(scaling.get("desiredSize", 0)),
                        labels=dict(group.get("labels") or {}),
                        taints=list(group.get("taints") or []),
                        status=str(group.get("status", "ACTIVE")),
                    )
                )
        return found

    def set_desired(self, group: Group, size: int) -> None:
        self.client.update_nodegroup_config(
            clusterName=group.cluster, nodegroupName=group.name, scalingConfig={"desiredSize": size}
        )

    @staticmethod
    def _all(pages: Any, key: str) -> list[str]:
        return [item for page in pages for item in page.get(key) or []]


# ---------------------------------------------------------------------------------------------- planning


@dataclass
class ScaleUp:
    group: Group
    nodes: int
    pods: list[Mapping[str, Any]]
    #: the share of the new nodes' cpu and memory left idle (least-waste's measure)
    waste: float


def _place(
    pod: Mapping[str, Any], asked: Resources, rooms: list[tuple[Resources, dict[str, str], list[Any]]]
) -> bool:
    """Put `pod` in the first room that takes it (its labels and taints admit it); False if none does."""
    for room, labels, taints in rooms:
        if room.fits(asked) and selects_node(pod, labels) and tolerates(pod, taints):
            room -= asked
            return True
    return False


def plan_scale_up(group: Group, pods: Sequence[Mapping[str, Any]]) -> ScaleUp | None:
    """How many new nodes of `group` (within its max) would take which of `pods`, first fit."""
    template = group.template()
    room_left = group.max_size - group.desired
    if template is None or room_left <= 0 or group.status != "ACTIVE":
        return None
    labels, taints = group.template_labels(), group.template_taints()
    new: list[tuple[Resources, dict[str, str], list[Any]]] = []
    helped: list[Mapping[str, Any]] = []
    for pod in pods:
        asked = pod_requests(pod)
        if not (template.fits(asked) and selects_node(pod, labels) and tolerates(pod, taints)):
            continue
        if not _place(pod, asked, new):
            if len(new) >= room_left:
                continue
            room = template.copy()
            room -= asked
            new.append((room, labels, taints))
        helped.append(pod)
    if not new:
        return None
    total_cpu, total_memory = template.cpu * len(new), template.memory * len(new)
    idle_cpu = sum((r.cpu for r, _, _ in new), Decimal(0))
    idle_memory = sum(r.memory for r, _, _ in new)
    waste = (float(idle_cpu / total_cpu) if total_cpu else 0.0) + (
        idle_memory / total_memory if total_memory else 0.0
    )
    return ScaleUp(group, len(new), helped, waste)


def expand(options: Sequence[ScaleUp], expander: str, rng: random.Random) -> ScaleUp:
    """The option the expander picks."""
    if expander == "most-pods":
        return max(options, key=lambda o: (len(o.pods), -o.nodes))
    if expander == "least-waste":
        return min(options, key=lambda o: (o.waste, -len(o.pods)))
    return rng.choice(list(options))


def balance(chosen: ScaleUp, groups: Sequence[Group]) -> dict[str, int]:
    """The new nodes of `chosen` spread over the groups similar to its group (each to the smallest), within
    their max: group key -> new desired size."""
    similar = [
        g for g in groups if g.key == chosen.group.key or (g.similar(chosen.group) and g.status == "ACTIVE")
    ]
    sizes = {g.key: g.desired for g in similar}
    limits = {g.key: g.max_size for g in similar}
    for _ in range(chosen.nodes):
        open_ = [k for k in sizes if sizes[k] < limits[k]]
        if not open_:
            break
        smallest = min(open_, key=lambda k: (sizes[k], k))
        sizes[smallest] += 1
    return {k: v for k, v in sizes.items() if v != next(g.desired for g in similar if g.key == k)}


# ---------------------------------------------------------------------------------------------- the loop


@dataclass
class State:
    scaled_up_nodes: int = 0
    scaled_down_nodes: int = 0
    failed_scale_ups: int = 0
    failed_scale_downs: int = 0
    unschedulable_pods: int = 0
    unneeded_nodes: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    last_scale_up: float = float("-inf")
    last_scale_down_failure: float = float("-inf")
    last_activity: float = field(default_factory=time.monotonic)
    #: node -> since when it is unneeded
    unneeded_since: dict[str, float] = field(default_factory=dict)
    #: group key -> backed off until
    backoff: dict[str, float] = field(default_factory=dict)
    #: nodes this autoscaler is removing, by name, and their uid (until that node leaves the API)
    deleting: dict[str, str] = field(default_factory=dict)


class Autoscaler:
    def __init__(self, options: Options, api: httpx.AsyncClient, eks: Eks, seed: int | None = None) -> None:
        self.options = options
        self.api = api
        self.eks = eks
        self.state = State()
        self.rng = random.Random(seed)

    # -- the API

    async def _list(self, path: str) -> list[dict[str, Any]]:
        response = await self.api.get(path)
        response.raise_for_status()
        return list(response.json().get("items") or [])

    async def _event(
        self, obj: Mapping[str, Any], kind: str, reason: str, message: str, warning: bool = False
    ) -> None:
        """An Event on `obj`, as the autoscaler records them (component cluster-autoscaler)."""
        namespace = meta(obj).get("namespace") or "default"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta(obj).get('name')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": kind,
                "name": meta(obj).get("name"),
                "namespace": meta(obj).get("namespace"),
                "uid": meta(obj).get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "cluster-autoscaler"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        with contextlib.suppress(httpx.HTTPError):
            await self.api.post(f"/api/v1/namespaces/{namespace}/events", json=event)

    # -- one pass

    async def run_once(self, now: float | None = None) -> None:
        """One scan: discover, scale up if pods wait for room, else consider scaling down."""
        now = time.monotonic() if now is None else now
        groups = await asyncio.to_thread(self.eks.groups, self.options.discovery)
        nodes = await self._list("/api/v1/nodes")
        pods = [p for p in await self._list("/api/v1/pods") if active(p)]
        budgets = await self._list("/apis/policy/v1/poddisruptionbudgets")
        present = {(meta(n).get("name"), meta(n).get("uid")) for n in nodes}
        self.state.deleting = {n: uid for n, uid in self.state.deleting.items() if (n, uid) in present}
        self.state.last_activity = time.monotonic()
        by_group = {g.key: g for g in groups}
        registered: dict[str, int] = {}
        for node in nodes:
            group = (meta(node).get("labels") or {}).get(NODEGROUP_LABEL)
            cluster = next((g.cluster for g in groups if g.name == group), None)
            if cluster is not None:
                registered[f"{cluster}/{group}"] = registered.get(f"{cluster}/{group}", 0) + 1
        self.state.nodes = {key: registered.get(key, 0) for key in by_group}
        waiting = [p for p in pods if unschedulable(p)]
        self.state.unschedulable_pods = len(waiting)
        upcoming = {g.key: max(0, g.desired - registered.get(g.key, 0)) for g in groups}
        scaled_up = False
        if waiting:
            scaled_up = await self.scale_up(now, groups, nodes, pods, waiting, upcoming)
        if scaled_up or any(upcoming.values()) or not self.options.scale_down_enabled:
            self.state.unneeded_since.clear()
            self.state.unneeded_nodes = 0
            return
        await self.scale_down(now, groups, nodes, pods, budgets)

    def _rooms(
        self, nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]], skip: set[str]
    ) -> list[tuple[Resources, dict[str, str], list[Any]]]:
        """The free room of each Ready, schedulable node not in `skip`."""
        rooms = []
        for node in nodes:
            name = meta(node).get("name")
            spec, status = node.get("spec") or {}, node.get("status") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if name in skip or spec.get("unschedulable") or not ready:
                continue
            taints = list(spec.get("taints") or [])
            if any(t.get("key") == TO_BE_DELETED for t in taints):
                continue
            room = allocatable(status.get("allocatable") or {})
            for pod in pods:
                if (pod.get("spec") or {}).get("nodeName") == name:
                    room -= pod_requests(pod)
            rooms.append((room, dict(meta(node).get("labels") or {}), taints))
        return rooms

    async def scale_up(
        self,
        now: float,
        groups: Sequence[Group],
        nodes: Sequence[Mapping[str, Any]],
        pods: Sequence[Mapping[str, Any]],
        waiting: Sequence[Mapping[str, Any]],
        upcoming: Mapping[str, int],
    ) -> bool:
        rooms = self._rooms(nodes, pods, set(self.state.deleting))
        for group in groups:
            template = group.template()
            if template is not None:
                rooms += [
                    (template.copy(), group.template_labels(), group.template_taints())
                    for _ in range(upcoming.get(group.key, 0))
                ]
        left = [p for p in waiting if not _place(p, pod_requests(p), rooms)]
        if not left:
            return False  # the scheduler will bind them, or nodes on their way will take them
        usable = [g for g in groups if self.state.backoff.get(g.key, float("-inf")) <= now]
        options = [o for o in (plan_scale_up(g, left) for g in usable) if o is not None]
        if not options:
            for pod in left:
                await self._event(
                    pod,
                    "Pod",
                    "NotTriggerScaleUp",
                    f"pod didn't trigger scale-up: none of {len(groups)} node group(s) would fit it "
                    "below its max size",
                )
            return False
        chosen = expand(options, self.options.expander, self.rng)
        sizes = (
            balance(chosen, usable)
            if self.options.balance_similar_node_groups
            else {chosen.group.key: min(chosen.group.desired + chosen.nodes, chosen.group.max_size)}
        )
        by_key = {g.key: g for g in groups}
        changes = []
        for key, size in sorted(sizes.items()):
            group = by_key[key]
            try:
                await asyncio.to_thread(self.eks.set_desired, group, size)
            except (ClientError, BotoCoreError) as err:
                self.state.failed_scale_ups += 1
                self.state.backoff[key] = now + self.options.initial_node_group_backoff
                log.warning("scale-up of %s to %d failed: %s", key, size, err)
                continue
            self.state.scaled_up_nodes += size - group.desired
            changes.append(f"{group.name} {group.desired}->{size} (max: {group.max_size})")
            log.info("scale-up: setting group %s size to %d (max %d)", key, size, group.max_size)
        if not changes:
            return False
        self.state.last_scale_up = now
        for pod in chosen.pods:
            await self._event(
                pod, "Pod", "TriggeredScaleUp", f"pod triggered scale-up: [{', '.join(changes)}]"
            )
        return True

    async def scale_down(
        self,
        now: float,
        groups: Sequence[Group],
        nodes: Sequence[Mapping[str, Any]],
        pods: Sequence[Mapping[str, Any]],
        budgets: Sequence[Mapping[str, Any]],
    ) -> None:
        by_name = {g.name: g for g in groups}
        unneeded: dict[str, tuple[Mapping[str, Any], Group, list[Mapping[str, Any]]]] = {}
        for node in nodes:
            name = str(meta(node).get("name"))
            group = by_name.get((meta(node).get("labels") or {}).get(NODEGROUP_LABEL, ""))
            if group is None or name in self.state.deleting or (node.get("spec") or {}).get("unschedulable"):
                continue
            mine = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name]
            if utilization(node, mine) >= self.options.scale_down_utilization_threshold:
                continue
            moving = [p for p in mine if not is_daemon_or_mirror(p)]
            if any(blocker(p, budgets, self.options) for p in moving) or budgets_allow(moving, budgets):
                continue
            rooms = self._rooms(nodes, pods, {name, *self.state.deleting})
            if not all(_place(p, pod_requests(p), rooms) for p in moving):
                continue
            unneeded[name] = (node, group, moving)
        for name in [n for n in self.state.unneeded_since if n not in unneeded]:
            del self.state.unneeded_since[name]
        for name in unneeded:
            self.state.unneeded_since.setdefault(name, now)
        self.state.unneeded_nodes = len(unneeded)
        if self.state.deleting:
            return  # one node at a time
        if now - self.state.last_scale_up < self.options.scale_down_delay_after_add:
            return
        if now - self.state.last_scale_down_failure < self.options.scale_down_delay_after_failure:
            return
        ripe = sorted(
            (since, name)
            for name, since in self.state.unneeded_since.items()
            if now - since >= self.options.scale_down_unneeded
            and unneeded[name][1].desired - 1 >= unneeded[name][1].min_size
        )
        if not ripe:
            return
        name = ripe[0][1]
        node, group, moving = unneeded[name]
        await self.remove(node, group, moving, budgets)

    async def remove(
        self,
        node: Mapping[str, Any],
        group: Group,
        moving: Sequence[Mapping[str, Any]],
        budgets: Sequence[Mapping[str, Any]],
    ) -> None:
        """Taint the node, evict its pods within their budgets, then lower its group's desired size."""
        name = str(meta(node).get("name"))
        self.state.deleting[name] = str(meta(node).get("uid"))
        self.state.unneeded_since.pop(name, None)
        log.info("scale-down: removing node %s of %s (utilization under %s)", name, group.key,
                 self.options.scale_down_utilization_threshold)  # fmt: skip
        try:
            await self._taint(name, add=True)
            await self._event(node, "Node", "ScaleDown", "marked the node as toBeDeleted/unschedulable")
            await self._evict_all(moving)
            await asyncio.to_thread(self.eks.set_desired, group, group.desired - 1)
        except (ScaleDownFailed, ClientError, BotoCoreError, httpx.HTTPError) as err:
            log.warning("scale-down of node %s failed: %s", name, err)
            self.state.failed_scale_downs += 1
            self.state.last_scale_down_failure = time.monotonic()
            self.state.deleting.pop(name, None)
            with contextlib.suppress(httpx.HTTPError):
                await self._taint(name, add=False)
            await self._event(
                node, "Node", "ScaleDownFailed", f"failed to drain the node: {err}", warning=True
            )
            return
        self.state.scaled_down_nodes += 1
        await self._event(node, "Node", "ScaleDown", f"node removed by cluster autoscaler ({group.name} -1)")

    async def _taint(self, name: str, *, add: bool) -> None:
        response = await self.api.get(f"/api/v1/nodes/{name}")
        response.raise_for_status()
        node = response.json()
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != TO_BE_DELETED]
        if add:
            taints.append({"key": TO_BE_DELETED, "value": str(int(time.time())), "effect": "NoSchedule"})
        patch = {"spec": {"taints": taints}}
        response = await self.api.patch(
            f"/api/v1/nodes/{name}", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        response.raise_for_status()

    async def _evict_all(self, pods: Sequence[Mapping[str, Any]]) -> None:
        """Evict each pod, retrying while a budget refuses (429) for `--max-pod-eviction-time`; then wait
        for them to be gone, at most `--max-graceful-termination-sec` more."""
        deadline = time.monotonic() + self.options.max_pod_eviction_time
        left = {pod_key(p): p for p in pods}
        while left:
            for key, pod in list(left.items()):
                namespace, name = meta(pod).get("namespace"), meta(pod).get("name")
                body = {
                    "apiVersion": "policy/v1",
                    "kind": "Eviction",
                    "metadata": {"name": name, "namespace": namespace},
                }
                response = await self.api.post(
                    f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", json=body
                )
                if response.status_code in (200, 201, 404):
                    del left[key]
                elif response.status_code != 429:
                    raise ScaleDownFailed(
                        f"evicting {key}: HTTP {response.status_code} {response.text[:200]}"
                    )
            if left and time.monotonic() > deadline:
                raise ScaleDownFailed(
                    f"{len(left)} pod(s) still refused by their disruption budgets after "
                    f"{self.options.max_pod_eviction_time:g}s: {', '.join(sorted(left))}"
                )
            if left:
                await asyncio.sleep(POLL_SECONDS)
        gone_by = time.monotonic() + self.options.max_graceful_termination
        uids = {meta(p).get("uid") for p in pods}
        while time.monotonic() < gone_by:
            still = [p for p in await self._list("/api/v1/pods") if meta(p).get("uid") in uids]
            if not still:
                return
            await asyncio.sleep(POLL_SECONDS)

    # -- running

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.run_once(started)
            except (httpx.HTTPError, ClientError, BotoCoreError, ValueError) as err:
                log.warning("scan failed: %s", err)
            pause = max(0.0, self.options.scan_interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stop.wait()

    def metrics(self) -> str:
        s = self.state
        lines = [
            "# HELP cluster_autoscaler_scaled_up_nodes_total Number of nodes added by CA.",
            "# TYPE cluster_autoscaler_scaled_up_nodes_total counter",
            f"cluster_autoscaler_scaled_up_nodes_total {s.scaled_up_nodes}",
            "# HELP cluster_autoscaler_scaled_down_nodes_total Number of nodes removed by CA.",
            "# TYPE cluster_autoscaler_scaled_down_nodes_total counter",
            f'cluster_autoscaler_scaled_down_nodes_total{{reason="underutilized"}} {s.scaled_down_nodes}',
            "# HELP cluster_autoscaler_failed_scale_ups_total Number of times scale-up operation has failed.",
            "# TYPE cluster_autoscaler_failed_scale_ups_total counter",
            f"cluster_autoscaler_failed_scale_ups_total {s.failed_scale_ups}",
            "# HELP cluster_autoscaler_unschedulable_pods_count Number of unschedulable pods in the cluster.",
            "# TYPE cluster_autoscaler_unschedulable_pods_count gauge",
            f"cluster_autoscaler_unschedulable_pods_count {s.unschedulable_pods}",
            "# HELP cluster_autoscaler_unneeded_nodes_count Number of nodes considered unneeded by CA.",
            "# TYPE cluster_autoscaler_unneeded_nodes_count gauge",
            f"cluster_autoscaler_unneeded_nodes_count {s.unneeded_nodes}",
            "# HELP cluster_autoscaler_nodes_count Number of nodes in cluster.",
            "# TYPE cluster_autoscaler_nodes_count gauge",
            f'cluster_autoscaler_nodes_count{{state="ready"}} {sum(s.nodes.values())}',
        ]
        return "\n".join(lines) + "\n"


class ScaleDownFailed(Exception):
    """A node could not be drained (a budget kept refusing, an eviction failed)."""


def create_app(autoscaler: Autoscaler) -> Quart:
    app = Quart("cluster_autoscaler")
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    @app.before_serving
    async def start() -> None:
        tasks.append(asyncio.create_task(autoscaler.run(stop), name="cluster-autoscaler"))

    @app.after_serving
    async def finish() -> None:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await autoscaler.api.aclose()

    @app.get("/health-check")
    async def health() -> Response:
        inactive = time.monotonic() - autoscaler.state.last_activity
        if inactive > max(600.0, 10 * autoscaler.options.scan_interval):
            return Response(f"no activity for {inactive:.0f}s\n", status=500, content_type="text/plain")
        return Response("OK", content_type="text/plain")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(autoscaler.metrics(), content_type=CONTENT_TYPE)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.standins.cluster_autoscaler", description=__doc__)
    parser.add_argument("--api-server", required=True)
    parser.add_argument("--aws-endpoint", required=True)
    parser.add_argument("--region", default=None, help="default: $AWS_REGION, else us-east-1")
    parser.add_argument("--listen", required=True, help="the pod's address")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- cluster-autoscaler's own flags")
    args = parser.parse_args(argv)
    try:
        options = parse_options([a for a in args.args if a != "--"])
    except ConfigError as err:
        print(f"standin_cluster_autoscaler: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    region = (
        args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    api = httpx.AsyncClient(
        base_url=args.api_server.rstrip("/"),
        headers={"Authorization": f"Bearer {LOCAL_API_TOKEN}"},
        timeout=30,
    )
    autoscaler = Autoscaler(options, api, Eks(args.aws_endpoint, region))
    serve_until_signalled(create_app(autoscaler), args.listen, options.port, GRACEFUL_TIMEOUT_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
