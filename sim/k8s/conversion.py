"""Serving one kind at two versions from one storage: HorizontalPodAutoscaler autoscaling/v1 <-> v2.

Objects are stored as autoscaling/v2 (the version our manifests use); `kubectl autoscale` (1.30) writes
autoscaling/v1, whose single CPU target maps to a v2 `Resource` metric. v2 metrics other than a CPU
utilization target have no v1 form and are not shown at v1.
"""

from __future__ import annotations

import copy
from typing import Any

from sim.k8s import resources
from sim.k8s.resources import ResourceType

Obj = dict[str, Any]
HPA_V1 = resources.find("autoscaling", "v1", "horizontalpodautoscalers")
HPA_V2 = resources.find("autoscaling", "v2", "horizontalpodautoscalers")


def storage_type(rt: ResourceType) -> ResourceType:
    if rt is HPA_V1 and HPA_V2 is not None:
        return HPA_V2
    return rt


def to_storage(rt: ResourceType, obj: Any) -> Any:
    """A request body at `rt`'s version, as stored."""
    if rt is not HPA_V1 or not isinstance(obj, dict):
        return obj
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    spec = out.get("spec")
    if isinstance(spec, dict):
        target = spec.pop("targetCPUUtilizationPercentage", None)
        if target is not None:
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            ]
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentCPUUtilizationPercentage", None)
        if current is not None:
            status["currentMetrics"] = [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}
            ]
    return out


def _cpu(metrics: Any, field: str) -> Any:
    for metric in metrics or []:
        resource = metric.get("resource") or {} if isinstance(metric, dict) else {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            return (resource.get(field) or {}).get("averageUtilization")
    return None


def from_storage(rt: ResourceType, obj: Obj) -> Obj:
    """A stored object, shown at `rt`'s version."""
    if rt is not HPA_V1:
        return obj
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    spec = out.get("spec")
    if isinstance(spec, dict):
        target = _cpu(spec.pop("metrics", None), "target")
        spec.pop("behavior", None)
        if target is not None:
            spec["targetCPUUtilizationPercentage"] = target
    status = out.get("status")
    if isinstance(status, dict):
        current = _cpu(status.pop("currentMetrics", None), "current")
        status.pop("conditions", None)
        if current is not None:
            status["currentCPUUtilizationPercentage"] = current
    return out


def list_from_storage(rt: ResourceType, listed: Obj) -> Obj:
    if rt is not HPA_V1:
        return listed
    return {**listed, "apiVersion": rt.api_version, "items": [from_storage(rt, o) for o in listed["items"]]}
