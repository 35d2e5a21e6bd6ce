"""The HorizontalPodAutoscaler controller (autoscaling/v2), with upstream's algorithm for Resource metrics.

Every `sync_seconds` (upstream's 15 s horizontal-pod-autoscaler-sync-period) each HPA reads its target's
scale (a Deployment, ReplicaSet or StatefulSet), the usage of the target's pods from `metrics` (PodMetrics
items as the node agent reports them) and proposes `ceil(current * usage / target)` replicas per metric,
within a 10% tolerance; pods without metrics, and (for cpu) pods not yet Ready, are counted as upstream's
replica calculator counts them. The largest proposal is stabilized (the highest recommendation of the
scale-down window, `behavior.scaleDown.stabilizationWindowSeconds` or 300 s; the lowest of the scale-up
window), limited by the scaling policies (without `behavior`: at most double, or 4, per sync) and by
min/max replicas, then written to the target's `spec.replicas`, as the scale subresource does. Status,
conditions (AbleToScale, ScalingActive, ScalingLimited) and events use upstream's reasons and messages.

Not done: Pods, Object and External metrics, ContainerResource metrics, the cpu initialization period.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kube.quantity import parse_quantity
from sim.controllers.base import Controller
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.events import record_event
from sim.k8s.eviction import pod_ready
from sim.k8s.selectors import LabelSelector
from sim.k8s.store import Obj, Store, now

log = logging.getLogger(__name__)

HPAS = resources.by_key("horizontalpodautoscalers.autoscaling")
PODS = resources.by_key("pods")
TARGETS = {
    "Deployment": resources.by_key("deployments.apps"),
    "ReplicaSet": resources.by_key("replicasets.apps"),
    "StatefulSet": resources.by_key("statefulsets.apps"),
}
MANAGER = "horizontal-pod-autoscaler"
SYNC_SECONDS = 15.0
TOLERANCE = 0.1
SUB_MILLI = {"n": 10**9, "u": 10**6}  # suffixes usage carries that resource quantities do not
DOWNSCALE_STABILIZATION_SECONDS = 300.0
DEFAULT_SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
DEFAULT_SCALE_DOWN = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}

STABILIZED_DOWN = (
    "recent recommendations were higher than current one, applying the highest recent recommendation"
)
STABILIZED_UP = (
    "recent recommendations were lower than current one, applying the lowest recent recommendation"
)

#: Reads the current usage: PodMetrics items (metadata.name/namespace, containers[].usage).
MetricsSource = Callable[[], Iterable[Mapping[str, Any]]]


class MetricError(Exception):
    """A metric that could not be computed; the message is upstream's."""


@dataclass
class Proposal:
    replicas: int
    status: Obj  # the `currentMetrics` entry
    name: str  # how upstream names the metric in messages


@dataclass
class History:
    """What the controller remembers of one HPA between syncs."""

    last_sync: float | None = None
    generation: int = 0
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_events: list[tuple[float, int]] = field(default_factory=list)  # (when, replicas added)
    reported: str = ""


def _milli(quantity: str | int | float) -> int:
    """A quantity in milli-units; also metrics-server's nano- and micro-units (`12345678n`)."""
    if isinstance(quantity, str) and quantity[-1:] in SUB_MILLI:
        return int(parse_quantity(quantity[:-1]) * 1000 / SUB_MILLI[quantity[-1]])
    return int(parse_quantity(quantity) * 1000)


def _quantity(milli: int) -> str:
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _container_requests(pod: Mapping[str, Any], resource: str) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        res = container.get("resources") or {}
        wanted = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        if resource not in wanted:
            raise MetricError(
                f"missing request for {resource} in container {container.get('name')} of Pod "
                f"{pod['metadata']['name']}"
            )
        total += _milli(wanted[resource])
    return total


def replica_count(
    current: int,
    pods: list[Obj],
    usage: Mapping[str, int],
    resource: str,
    target: int,
    requests: Mapping[str, int] | None,
    tolerance: float = TOLERANCE,
) -> tuple[int, int, int]:
    """Upstream's replica calculator for one Resource metric: (replicas, utilization or average usage,
    average usage in milli-units). `requests` given: `target` is a utilization percentage (per-pod
    requests in milli-units); else `target` is an average value in milli-units."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    if not usage:
        raise MetricError(
            f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        )
    ready, unready, missing = 0, set(), set()
    metrics: dict[str, int] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp") or phase == "Failed":
            continue
        if phase == "Pending":
            unready.add(name)
        elif name not in usage:
            missing.add(name)
        elif resource == "cpu" and not pod_ready(pod):
            unready.add(name)
        else:
            metrics[name] = usage[name]
            ready += 1
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")

    def ratio(values: Mapping[str, int]) -> tuple[float, int, int]:
        if requests is None:
            average = sum(values.values()) // len(values)
            return average / target, average, average
        known = {n: v for n, v in values.items() if n in requests}
        total_request = sum(requests[n] for n in known)
        if total_request == 0:
            raise MetricError("no metrics returned matched known pods")
        utilization = sum(known.values()) * 100 // total_request
        return utilization / target, utilization, sum(known.values()) // len(known)

    usage_ratio, shown, average = ratio(metrics)
    scale_up_with_unready = bool(unready) and usage_ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - usage_ratio) <= tolerance:
            return current, shown, average
        return math.ceil(usage_ratio * ready), shown, average
    for name in missing:
        if usage_ratio < 1.0:
            fallback = target if requests is None else requests.get(name, 0) * max(100, target) // 100
            metrics[name] = fallback
        elif usage_ratio > 1.0:
            metrics[name] = 0
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = 0
    new_ratio, _, _ = ratio(metrics)
    if (
        abs(1.0 - new_ratio) <= tolerance
        or (usage_ratio < 1.0 < new_ratio)
        or (new_ratio < 1.0 < usage_ratio)
    ):
        return current, shown, average
    proposed = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and proposed > current) or (new_ratio > 1.0 and proposed < current):
        return current, shown, average
    return proposed, shown, average


def _policy_limit(
    rules: Mapping[str, Any], current: int, events: list[tuple[float, int]], moment: float, up: bool
) -> int:
    """The furthest `rules` let the replicas move from `current` now, given the recent scale events."""
    select = rules.get("selectPolicy", "Max")
    if select == "Disabled":
        return current
    limits = []
    for policy in rules.get("policies") or []:
        period = float(policy.get("periodSeconds", 15))
        changed = sum(abs(d) for t, d in events if moment - t < period and (d > 0) == up)
        start = current - changed if up else current + changed
        value = int(policy.get("value", 0))
        if policy.get("type") == "Pods":
            limits.append(start + value if up else start - value)
        elif up:
            limits.append(math.ceil(start * (1 + value / 100)))
        else:
            limits.append(int(start * (1 - value / 100)))
    if not limits:
        return current
    most = max(limits) if up else min(limits)
    least = min(limits) if up else max(limits)
    return most if select == "Max" else least


class HorizontalPodAutoscalerController(Controller):
    """Syncs each HPA every `sync_seconds`, and at once when an HPA is created or its spec changes."""

    name = MANAGER
    watches = frozenset({HPAS.key})
    period = 1.0  # the tick that finds HPAs due; each one syncs every `sync_seconds`

    def __init__(
        self,
        store: Store,
        metrics: MetricsSource | None = None,
        sync_seconds: float = SYNC_SECONDS,
        downscale_stabilization_seconds: float = DOWNSCALE_STABILIZATION_SECONDS,
        tolerance: float = TOLERANCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(store)
        self.metrics: MetricsSource = metrics or (lambda: [])
        self.sync_seconds = sync_seconds
        self.downscale_stabilization_seconds = downscale_stabilization_seconds
        self.tolerance = tolerance
        self.clock = clock
        self.history: dict[str, History] = {}

    def reconcile(self) -> None:
        moment = self.clock()
        hpas = list(self.store.iter_objects(HPAS))
        live = {h["metadata"]["uid"] for h in hpas}
        self.history = {uid: h for uid, h in self.history.items() if uid in live}
        usage: list[Mapping[str, Any]] | None = None
        for hpa in hpas:
            meta = hpa["metadata"]
            history = self.history.setdefault(meta["uid"], History())
            generation = int(meta.get("generation") or 1)
            due = history.last_sync is None or moment - history.last_sync >= self.sync_seconds
            if not due and history.generation == generation:
                continue
            history.last_sync, history.generation = moment, generation
            if usage is None:
                usage = list(self.metrics())
            try:
                self._sync(self.store.get(HPAS, meta["namespace"], meta["name"]), history, usage, moment)
            except ApiError as err:  # changed or gone meanwhile: the next sync sees it
                log.debug("hpa %s: %s", meta["name"], err)

    # ------------------------------------------------------------------ one HPA

    def _sync(self, hpa: Obj, history: History, usage: list[Mapping[str, Any]], moment: float) -> None:
        meta, spec = hpa["metadata"], hpa.get("spec") or {}
        namespace = meta["namespace"]
        status = dict(hpa.get("status") or {})
        conditions: dict[str, Obj] = {c["type"]: c for c in status.get("conditions") or []}

        def condition(kind: str, state: str, reason: str, message: str) -> None:
            old = conditions.get(kind) or {}
            stamp = old.get("lastTransitionTime") if old.get("status") == state else None
            conditions[kind] = {
                "type": kind,
                "status": state,
                "reason": reason,
                "message": message,
                "lastTransitionTime": stamp or now(),
            }

        ref = spec.get("scaleTargetRef") or {}
        rt = TARGETS.get(ref.get("kind", ""))
        try:
            if rt is None:
                group = str(ref.get("apiVersion", "")).rpartition("/")[0]
                raise ApiError(404, "NotFound", f'no matches for kind "{ref.get("kind")}" in group "{group}"')
            target = self.store.get(rt, namespace, ref.get("name", ""))
        except ApiError as err:
            message = f"the HPA controller was unable to get the target's current scale: {err.message}"
            condition("AbleToScale", "False", "FailedGetScale", message)
            self._report(hpa, history, "FailedGetScale", message)
            self._write(hpa, status, conditions)
            return
        condition(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        current = int((target.get("spec") or {}).get("replicas", 1))
        minimum, maximum = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        status["currentReplicas"] = int((target.get("status") or {}).get("replicas", current))
        desired, reason = current, ""
        if current == 0 and minimum != 0:
            desired = 0
            condition(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > maximum:
            desired, reason = maximum, "Current number of replicas above Spec.MaxReplicas"
            condition(
                "ScalingLimited",
                "True",
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        elif current < minimum:
            desired, reason = minimum, "Current number of replicas below Spec.MinReplicas"
            condition(
                "ScalingLimited",
                "True",
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        else:
            proposals, failures = self._proposals(hpa, target, current, usage)
            status["currentMetrics"] = [p.status for p in proposals] or None
            if not proposals:
                message = f"the HPA was unable to compute the replica count: {failures[0]}"
                condition("ScalingActive", "False", "FailedGetResourceMetric", message)
                self._report(hpa, history, "FailedComputeMetricsReplicas", failures[0])
                self._write(hpa, status, conditions)
                return
            best = max(proposals, key=lambda p: p.replicas)
            condition(
                "ScalingActive",
                "True",
                "ValidMetricFound",
                f"the HPA was able to successfully calculate a replica count from {best.name}",
            )
            history.reported = ""
            proposed = best.replicas
            if proposed > current:
                reason = f"{best.name} above target"
            elif proposed < current:
                reason = "All metrics below target"
            stabilized, why, note = self._stabilize(hpa, history, current, proposed, moment)
            condition("AbleToScale", "True", why, note)
            desired, limit_reason, limit_note = self._limit(
                spec, history, current, stabilized, minimum, maximum, moment
            )
            condition(
                "ScalingLimited", "False" if desired == stabilized else "True", limit_reason, limit_note
            )
        status["desiredReplicas"] = desired
        if desired != current:
            try:
                self._rescale(rt, target, desired)
            except ApiError as err:
                message = f"the HPA controller was unable to update the target scale: {err.message}"
                condition("AbleToScale", "False", "FailedUpdateScale", message)
                record_event(
                    self.store,
                    hpa,
                    "Warning",
                    "FailedRescale",
                    f"New size: {desired}; reason: {reason}; error: {err.message}",
                    MANAGER,
                )
            else:
                history.scale_events.append((moment, desired - current))
                status["lastScaleTime"] = now()
                condition(
                    "AbleToScale",
                    "True",
                    "SucceededRescale",
                    f"the HPA controller was able to update the target scale to {desired}",
                )
                record_event(
                    self.store,
                    hpa,
                    "Normal",
                    "SuccessfulRescale",
                    f"New size: {desired}; reason: {reason}",
                    MANAGER,
                )
        self._write(hpa, status, conditions)

    def _proposals(
        self, hpa: Obj, target: Obj, current: int, usage: list[Mapping[str, Any]]
    ) -> tuple[list[Proposal], list[str]]:
        namespace = hpa["metadata"]["namespace"]
        selector = LabelSelector.from_dict((target.get("spec") or {}).get("selector"))
        pods = [p for p in self.store.iter_objects(PODS, namespace) if selector and selector.matches(p)]
        proposals: list[Proposal] = []
        failures: list[str] = []
        for metric in (hpa.get("spec") or {}).get("metrics") or []:
            resource = metric.get("resource") or {}
            if metric.get("type") != "Resource" or not resource.get("name"):
                failures.append(f"unsupported metric source type {metric.get('type')!r}")
                continue
            try:
                proposals.append(self._resource_proposal(resource, current, pods, namespace, usage))
            except (MetricError, ValueError) as err:  # ValueError: a malformed quantity
                what = (
                    "utilization" if (resource.get("target") or {}).get("type") == "Utilization" else "usage"
                )
                failures.append(f"failed to get {resource['name']} {what}: {err}")
        return proposals, failures

    def _resource_proposal(
        self,
        resource: Mapping[str, Any],
        current: int,
        pods: list[Obj],
        namespace: str,
        usage: list[Mapping[str, Any]],
    ) -> Proposal:
        name, target = resource["name"], resource.get("target") or {}
        samples: dict[str, int] = {}
        for item in usage:
            meta = item.get("metadata") or {}
            if meta.get("namespace") == namespace:
                samples[meta.get("name", "")] = sum(
                    _milli((c.get("usage") or {}).get(name, "0")) for c in item.get("containers") or []
                )
        wanted = {p["metadata"]["name"] for p in pods}
        samples = {n: v for n, v in samples.items() if n in wanted}
        if target.get("type") == "Utilization":
            requests = {p["metadata"]["name"]: _container_requests(p, name) for p in pods}
            percent = int(target.get("averageUtilization") or 0)
            replicas, utilization, average = replica_count(
                current, pods, samples, name, percent, requests, self.tolerance
            )
            status = {"averageUtilization": utilization, "averageValue": _quantity(average)}
            return Proposal(
                replicas, _metric_status(name, status), f"{name} resource utilization (percentage of request)"
            )
        value = _milli(target.get("averageValue") or target.get("value") or "0")
        if value <= 0:
            raise MetricError(f"invalid target value for {name}")
        replicas, average, _ = replica_count(current, pods, samples, name, value, None, self.tolerance)
        return Proposal(
            replicas, _metric_status(name, {"averageValue": _quantity(average)}), f"{name} resource"
        )

    def _stabilize(
        self, hpa: Obj, history: History, current: int, proposed: int, moment: float
    ) -> tuple[int, str, str]:
        behavior = (hpa.get("spec") or {}).get("behavior") or {}
        up_window = float((behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds", 0))
        down = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds")
        down_window = self.downscale_stabilization_seconds if down is None else float(down)
        recent_up = [r for t, r in history.recommendations if moment - t < up_window]
        recent_down = [r for t, r in history.recommendations if moment - t < down_window]
        keep = max(up_window, down_window)
        history.recommendations = [(t, r) for t, r in history.recommendations if moment - t < keep]
        history.recommendations.append((moment, proposed))
        up_floor, down_ceiling = min([proposed, *recent_up]), max([proposed, *recent_down])
        stabilized = min(max(current, up_floor), down_ceiling)
        if stabilized > proposed:
            return (
                stabilized,
                "ScaleDownStabilized",
                STABILIZED_DOWN,
            )
        if stabilized < proposed:
            return (
                stabilized,
                "ScaleUpStabilized",
                STABILIZED_UP,
            )
        return stabilized, "ReadyForNewScale", "recommended size matches current size"

    def _limit(
        self,
        spec: Mapping[str, Any],
        history: History,
        current: int,
        desired: int,
        minimum: int,
        maximum: int,
        moment: float,
    ) -> tuple[int, str, str]:
        """`desired` within min/max and the scaling rate; the ScalingLimited reason and message."""
        history.scale_events = [(t, d) for t, d in history.scale_events if moment - t < 1800]
        behavior = spec.get("behavior")
        if behavior is None:
            up_limit, down_limit = max(2 * current, 4), 0
        else:
            up_rules = {**DEFAULT_SCALE_UP, **(behavior.get("scaleUp") or {})}
            down_rules = {**DEFAULT_SCALE_DOWN, **(behavior.get("scaleDown") or {})}
            up_limit = max(current, _policy_limit(up_rules, current, history.scale_events, moment, up=True))
            down_limit = min(
                current, _policy_limit(down_rules, current, history.scale_events, moment, up=False)
            )
        if desired > current:
            if maximum > up_limit:
                ceiling, reason, note = (
                    up_limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            else:
                ceiling, reason, note = (
                    maximum,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            if desired > ceiling:
                return ceiling, reason, note
        elif desired < current:
            if minimum < down_limit:
                floor, reason, note = (
                    down_limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            else:
                floor, reason, note = (
                    minimum,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            if desired < floor:
                return floor, reason, note
        if desired < minimum:
            return (
                minimum,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        if desired > maximum:
            return (
                maximum,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    # ------------------------------------------------------------------ writes

    def _rescale(self, rt: resources.ResourceType, target: Obj, replicas: int) -> None:
        """What the scale subresource does: set `spec.replicas` on the target."""
        meta = target["metadata"]
        target.setdefault("spec", {})["replicas"] = replicas
        self.store.update(rt, meta["namespace"], meta["name"], target, manager=MANAGER)

    def _report(self, hpa: Obj, history: History, reason: str, message: str) -> None:
        """A Warning event, once per distinct failure."""
        if history.reported != message:
            history.reported = message
            record_event(self.store, hpa, "Warning", reason, message, MANAGER)

    def _write(self, hpa: Obj, status: Obj, conditions: Mapping[str, Obj]) -> None:
        order = ("AbleToScale", "ScalingActive", "ScalingLimited")
        status["conditions"] = [conditions[k] for k in order if k in conditions]
        status["observedGeneration"] = int(hpa["metadata"].get("generation") or 1)
        status.setdefault("desiredReplicas", status.get("currentReplicas", 0))
        status = {k: v for k, v in status.items() if v is not None}
        if status == (hpa.get("status") or {}):
            return
        meta = hpa["metadata"]
        hpa["status"] = status
        self.store.update(HPAS, meta["namespace"], meta["name"], hpa, subresource="status", manager=MANAGER)


def _metric_status(name: str, current: Obj) -> Obj:
    return {"type": "Resource", "resource": {"name": name, "current": current}}
