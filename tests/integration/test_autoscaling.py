"""Autoscaling as a closed loop, on the stage's own APIs: shoppers (the load generator's Locust users,
driven from the runner so every failed request is named) ramp the shop up; the HPAs of the hot services
scale out on measured CPU; the pods that no longer fit wait Unschedulable; the cluster autoscaler raises
the EKS node group (never above its max); the new nodes join in the subnets' zones; every pod is scheduled
and Ready, and no checkout failed. Then the load stops (one shopper keeps checking out): the HPAs scale in
after their stabilization window, the autoscaler removes the nodes no longer needed, back to the starting
size (never below min), every PodDisruptionBudget holds throughout (sampled as test_resilience.py does),
and no request fails during the scale-in.

Every bound comes from the stage's settings (the autoscaler's and the HPAs' times on its clock, its
rollout timeout; AWS provisions instances in minutes, the local cloud in seconds). The test leaves the
node group at the size it found. `run_loop` is what `tests/bench/autoscaling.py` times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.core_v1 import Node, Pod

from infra.aws.eks import node_group_name
from infra.model import SERVICES
from kube.requests import Resources, allocatable, pod_requests
from tests.integration.load import CheckoutLoad, MixedLoad
from tests.integration.observe import ready
from tests.integration.stages import Stage
from tests.integration.test_resilience import budgets, unschedulable, wait_for_a_settled_stage
from tests.support.waiting import eventually

# in AWS the loop takes tens of minutes: instances join in minutes and scale in after 10 minutes unneeded
pytestmark = [pytest.mark.disruptive, pytest.mark.long, pytest.mark.timeout(5400)]

HOT_SERVICES = tuple(row.name for row in SERVICES if row.autoscaled)
#: shoppers of the ramp (each pausing `MixedLoad`'s 50 ms between tasks): enough to push the hot
#: services past their CPU target on two shared cores
SHOPPERS = 6
SAMPLE_SECONDS = 0.5
ZONE_LABEL = "topology.kubernetes.io/zone"
CHECKOUT = "POST /api/checkout"
#: how long an instance takes to join as a Ready node: EKS takes minutes, the local cloud seconds
PROVISION_SECONDS = {"aws": 600.0, "local": 120.0, "kind": 120.0}
#: the HPA controller's own pace: its metrics window and sync period
HPA_REACTION_SECONDS = 180.0


@dataclass
class Bounds:
    """How long each phase may take on this stage."""

    scale_out: float
    scale_in: float

    @classmethod
    def of(cls, stage: Stage) -> Bounds:
        s = stage.settings
        scale, scaler = s.autoscaling_scale, s.cluster_autoscaler
        provision = PROVISION_SECONDS.get(stage.name, 600.0)
        scale_out = HPA_REACTION_SECONDS + scaler.scan_interval_seconds * scale + provision
        scale_out += s.rollout_timeout_seconds
        stabilization = s.hpa_scale_down_stabilization_seconds * scale
        after_add = scaler.scale_down_delay_after_add_seconds * scale
        unneeded = scaler.scale_down_unneeded_seconds * scale
        # the HPAs come down after their window; a node goes once it was unneeded long enough (and no
        # sooner than the delay after the last add); each node's pods drain within their grace
        scale_in = HPA_REACTION_SECONDS + stabilization + max(after_add, unneeded) + unneeded
        scale_in += s.node_group.max_size * (provision / 2 + s.rollout_timeout_seconds / 2)
        return cls(scale_out, scale_in)


@dataclass
class Watch:
    """Samples, in the background, what must hold at every moment: the node group within its bounds,
    every disruption budget kept; and what happened: the most nodes, unschedulable pods seen."""

    stage: Stage
    low: int
    high: int
    desired_seen: list[int] = field(default_factory=list)
    nodes_seen: list[int] = field(default_factory=list)
    #: (monotonic time, nodes) at each sample
    timeline: list[tuple[float, int]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    unschedulable_seen: int = 0
    failed_samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        self._thread = threading.Thread(target=self._run, name="autoscaling-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        kube, eks, s = self.stage.kube(), self.stage.aws("eks"), self.stage.settings
        while not self._stop.is_set():
            try:
                group = eks.describe_nodegroup(clusterName=s.cluster_name, nodegroupName=node_group_name(s))
                self.desired_seen.append(int(group["nodegroup"]["scalingConfig"]["desiredSize"]))
                self.nodes_seen.append(len(list(kube.list(Node))))
                self.timeline.append((time.monotonic(), self.nodes_seen[-1]))
                self.broken += [
                    f"{name}: {healthy} < {wanted}"
                    for name, healthy, wanted in budgets(self.stage)
                    if healthy < wanted
                ]
                waiting = [p for p in kube.list(Pod, namespace=self.stage.namespace) if unschedulable(p)]
                self.unschedulable_seen = max(self.unschedulable_seen, len(waiting))
            except Exception:  # noqa: BLE001 (a sample that failed is taken again)
                self.failed_samples += 1
            self._stop.wait(SAMPLE_SECONDS)


@dataclass
class LoopResult:
    """What one turn of the loop measured (seconds from the load's start, and from its end)."""

    start_size: int
    peak_size: int
    hpa_out: float
    first_new_node_ready: float
    all_pods_ready: float
    back_to_start: float
    peak_seconds: float
    rest_seconds: float
    orders_at_peak: int
    orders_at_rest: int
    new_node_zones: set[str]
    subnet_zones: set[str]
    failed_checkouts: list[str]
    failed_other: list[str]
    failed_during_scale_in: list[str]
    watch: Watch
    #: when the load began and ended (monotonic)
    began: float = 0.0
    ended: float = 0.0
    orders_of_ramp: int = 0

    def node_hours(self, start: float, end: float) -> float:
        """Node-hours between two moments, from the watch's samples (each holds until the next)."""
        samples = [(t, n) for t, n in self.watch.timeline if start <= t <= end]
        total = 0.0
        for (t, n), (following, _) in zip(samples, [*samples[1:], (end, 0)], strict=True):
            total += n * (following - t)
        return total / 3600


def _node_ready(node: Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _ready_nodes(stage: Stage) -> dict[str, str]:
    """Ready nodes by name, with their zone."""
    found = {}
    for node in stage.kube().list(Node):
        if node.metadata and _node_ready(node):
            found[node.metadata.name or ""] = (node.metadata.labels or {}).get(ZONE_LABEL, "")
    return found


def _hpas(stage: Stage) -> dict[str, tuple[int, int]]:
    """Each hot service's HPA: its minimum and its current replicas."""
    found = {}
    for hpa in stage.kube().list(HorizontalPodAutoscaler, namespace=stage.namespace):
        if hpa.metadata and hpa.metadata.name in HOT_SERVICES and hpa.spec:
            current = (hpa.status.currentReplicas if hpa.status else None) or 0
            found[hpa.metadata.name] = (hpa.spec.minReplicas or 1, current)
    return found


def _all_pods_ready(stage: Stage) -> bool:
    """Every live pod of the shop bound to a node and Ready."""
    live = []
    for pod in stage.kube().list(Pod, namespace=stage.namespace):
        if pod.metadata is None or pod.status is None or pod.metadata.deletionTimestamp is not None:
            continue
        if pod.status.phase not in ("Succeeded", "Failed"):
            live.append(pod)
    return bool(live) and all(p.spec is not None and p.spec.nodeName and ready(p) for p in live)


def _desired(stage: Stage) -> dict[str, int]:
    s = stage.settings
    group = stage.aws("eks").describe_nodegroup(clusterName=s.cluster_name, nodegroupName=node_group_name(s))
    return dict(group["nodegroup"]["scalingConfig"])


def _subnet_zones(stage: Stage) -> set[str]:
    s = stage.settings
    group = stage.aws("eks").describe_nodegroup(clusterName=s.cluster_name, nodegroupName=node_group_name(s))
    subnets = stage.aws("ec2").describe_subnets(SubnetIds=group["nodegroup"]["subnets"])["Subnets"]
    return {subnet["AvailabilityZone"] for subnet in subnets}


def room_left_at_every_hpa_maximum(stage: Stage) -> str | None:
    """The room the Ready nodes would have left with every hot service at its HPA's maximum, when that
    is room (then the cluster autoscaler has nothing to act on, whatever the load); None when it is not."""
    kube = stage.kube()
    room = Resources()
    for node in kube.list(Node):
        if node.status and _node_ready(node):
            room += allocatable(node.status.allocatable or node.status.capacity or {})
    for pod in kube.list(Pod, namespace="*"):
        if pod.spec and pod.spec.nodeName and pod.status and pod.status.phase not in ("Succeeded", "Failed"):
            room -= pod_requests(pod.to_dict())
    for hpa in kube.list(HorizontalPodAutoscaler, namespace=stage.namespace):
        if hpa.metadata is None or hpa.metadata.name not in HOT_SERVICES or hpa.spec is None:
            continue
        target = kube.get(Deployment, hpa.spec.scaleTargetRef.name, namespace=stage.namespace).to_dict()
        more = hpa.spec.maxReplicas - ((hpa.status.currentReplicas if hpa.status else None) or 0)
        for _ in range(max(more, 0)):
            room -= pod_requests(target["spec"]["template"])
    if room.cpu < 0 or room.memory < 0 or room.pods < 0:
        return None
    return f"with {room.cpu} CPU, {room.memory // 2**20} MiB and {room.pods} pods to spare"


def run_loop(stage: Stage, shoppers: int = SHOPPERS, say: Callable[[str], None] = print) -> LoopResult:
    """Ramp the load up, wait for the pods and nodes to scale out, stop it, wait for them to scale back
    in; the node group is put back to its starting size whatever happens."""
    bounds = Bounds.of(stage)
    sizes = _desired(stage)
    start_size, start_nodes = sizes["desiredSize"], _ready_nodes(stage)
    say(f"node group at {sizes}; {len(start_nodes)} Ready nodes; bounds {bounds}")
    try:
        with Watch(stage, sizes["minSize"], sizes["maxSize"]) as watch:
            began = time.monotonic()
            with MixedLoad(
                stage.shop_url,
                shoppers=shoppers,
                max_seconds=bounds.scale_out + 120,
                max_requests=1_000_000,
            ) as load:
                eventually(
                    lambda: any(current > low for low, current in _hpas(stage).values()),
                    timeout=bounds.scale_out,
                    interval=1,
                    what=f"an HPA of {', '.join(HOT_SERVICES)} scaling out on measured CPU",
                )
                hpa_out = time.monotonic() - began
                say(f"HPAs scaling out after {hpa_out:.0f}s: {_hpas(stage)}")
                eventually(
                    lambda: _desired(stage)["desiredSize"] > start_size,
                    timeout=bounds.scale_out,
                    interval=1,
                    what="the cluster autoscaler raising the node group",
                )
                eventually(
                    lambda: set(_ready_nodes(stage)) - set(start_nodes),
                    timeout=bounds.scale_out,
                    interval=1,
                    what="a new node Ready",
                )
                first_node = time.monotonic() - began
                say(f"first new node Ready after {first_node:.0f}s: {_ready_nodes(stage)}")
                eventually(
                    lambda: _all_pods_ready(stage),
                    timeout=bounds.scale_out,
                    interval=1,
                    what="every pod scheduled and Ready",
                )
                all_ready = time.monotonic() - began
                peak_size = _desired(stage)["desiredSize"]
                new_zones = {zone for name, zone in _ready_nodes(stage).items() if name not in start_nodes}
                orders_at_peak = len(load.placed)
                say(f"all pods Ready after {all_ready:.0f}s on {peak_size} nodes: {_hpas(stage)}")
            peak_seconds = time.monotonic() - began
            failures = load.failures
            ended = time.monotonic()
            with CheckoutLoad(
                stage.shop_url, shoppers=1, max_seconds=bounds.scale_in + 60, max_checkouts=100_000
            ) as quiet:
                eventually(
                    lambda: all(current <= low for low, current in _hpas(stage).values()),
                    timeout=bounds.scale_in,
                    interval=2,
                    what="the HPAs back at their minimum after their stabilization window",
                )
                say(f"HPAs back at their minimum after {time.monotonic() - ended:.0f}s")
                eventually(
                    lambda: (
                        _desired(stage)["desiredSize"] == start_size
                        and len(_ready_nodes(stage)) == start_size
                        and len(list(stage.kube().list(Node))) == start_size
                    ),
                    timeout=bounds.scale_in,
                    interval=2,
                    what=f"the node group back to {start_size} nodes",
                )
                back = time.monotonic() - ended
                say(f"node group back to {start_size} after {back:.0f}s")
                eventually(
                    lambda: _all_pods_ready(stage),
                    timeout=bounds.scale_in,
                    interval=1,
                    what="every pod Ready",
                )
            rest_seconds = time.monotonic() - ended
        return LoopResult(
            start_size=start_size,
            peak_size=peak_size,
            hpa_out=hpa_out,
            first_new_node_ready=first_node,
            all_pods_ready=all_ready,
            back_to_start=back,
            peak_seconds=peak_seconds,
            rest_seconds=rest_seconds,
            orders_at_peak=orders_at_peak,
            orders_at_rest=len(quiet.placed),
            new_node_zones=new_zones,
            subnet_zones=_subnet_zones(stage),
            failed_checkouts=[f for f in failures if CHECKOUT in f],
            failed_other=[f for f in failures if CHECKOUT not in f],
            failed_during_scale_in=quiet.failures,
            watch=watch,
            began=began,
            ended=ended,
            orders_of_ramp=len(load.placed),
        )
    finally:
        if _desired(stage)["desiredSize"] != start_size:
            s = stage.settings
            stage.aws("eks").update_nodegroup_config(
                clusterName=s.cluster_name,
                nodegroupName=node_group_name(s),
                scalingConfig={"desiredSize": start_size},
            )
            eventually(
                lambda: len(list(stage.kube().list(Node))) == start_size,
                timeout=bounds.scale_in,
                interval=2,
                what=f"{start_size} nodes again",
            )


def test_load_scales_pods_and_nodes_out_and_back_in_within_every_budget(stage: Stage) -> None:
    if not stage.nodes_follow_node_group or not stage.settings.cluster_autoscaler_enabled:
        pytest.skip(f"the {stage.name} stage's nodes do not follow the EKS node group: no cluster autoscaler")
    wait_for_a_settled_stage(stage)
    room = room_left_at_every_hpa_maximum(stage)
    if room is not None:
        why = (
            " (the local inventory leaves Prometheus out where its binary is missing: install Debian's "
            "prometheus package, as .ci/run does)"
            if not stage.settings.prometheus
            else ""
        )
        pytest.skip(
            f"no load can make a pod wait: the Ready nodes hold every HPA at its maximum, {room}{why}"
        )
    result = run_loop(stage, say=stage.console.print)
    watch = result.watch
    assert watch.unschedulable_seen > 0, "no pod ever waited for room: the load did not outgrow the nodes"
    assert result.peak_size > result.start_size
    assert max(watch.desired_seen) <= watch.high, (
        f"the node group went above its max: {max(watch.desired_seen)}"
    )
    assert min(watch.desired_seen) >= watch.low, (
        f"the node group went below its min: {min(watch.desired_seen)}"
    )
    assert result.new_node_zones <= result.subnet_zones, (result.new_node_zones, result.subnet_zones)
    assert result.failed_checkouts == [], (
        f"{len(result.failed_checkouts)} checkouts failed: {result.failed_checkouts[:5]}"
    )
    assert result.failed_during_scale_in == [], (
        f"{len(result.failed_during_scale_in)} requests failed during the scale-in: "
        f"{result.failed_during_scale_in[:5]}"
    )
    assert sorted(set(watch.broken)) == [], f"disruption budgets broken: {sorted(set(watch.broken))[:10]}"
    assert result.orders_at_peak > 0, "no order was placed under load"
