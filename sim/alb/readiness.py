"""Pod readiness gates, as the AWS Load Balancer Controller does them for IP targets.

Injection (upstream a mutating webhook; here `ReadinessGateInjector`, an admission hook the cluster
registers with its store): a pod created in a namespace labelled
`elbv2.k8s.aws/pod-readiness-gate-inject=enabled` gets, for each `alb` target group whose Service selects
it, the readiness gate `target-health.elbv2.k8s.aws/<target group name>`. Only at creation: a pod created
before the Ingress has none, as upstream.

Conditions (`gate_conditions`, written by the controller): a gated pod that is one of its target group's
targets (registered, or being registered this pass) gets its gate's condition from its target's health as
the data plane measures it (its admin `/targets`): True when healthy (with no reason, as ELBv2 gives none
for a healthy target), else False with ELBv2's reason and description (`Elb.RegistrationInProgress`
while the data plane has not yet seen the registration). A pod that is no target (its containers are not
ready, it is being deleted) is left as it is; a pod whose gate names a target group no Ingress declares any
more turns True, as upstream does when a target group binding goes. The kubelet then counts the gate in
the pod's Ready condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sim.alb.model import READINESS_GATE_PREFIX, LoadBalancerSpec, Obj, Plan, plan
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.resources import ResourceType
from sim.k8s.store import Store

INJECT_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
PODS = resources.by_key("pods")
INGRESSES = resources.by_key("ingresses.networking.k8s.io")
CLASSES = resources.by_key("ingressclasses.networking.k8s.io")
SERVICES = resources.by_key("services")
REGISTERING = {
    "state": "initial",
    "reason": "Elb.RegistrationInProgress",
    "description": "Target registration is in progress",
}
BINDING_DELETED = "Target Group Binding is deleted"

#: the data plane's target health: by target group name, by target (`ip:port`), its `state`, `reason`
#: and `description`
TargetHealth = Mapping[str, Mapping[str, Mapping[str, str]]]


@dataclass(frozen=True)
class GateCondition:
    """The condition a pod's readiness gate should have."""

    namespace: str
    pod: str
    type: str
    status: str  # True, False
    reason: str = ""
    message: str = ""

    def differs(self, current: Mapping[str, Any] | None) -> bool:
        if current is None:
            return True
        have = (current.get("status"), current.get("reason") or "", current.get("message") or "")
        return have != (self.status, self.reason, self.message)


def _gates(pod: Obj) -> list[str]:
    return [str(g.get("conditionType")) for g in (pod.get("spec") or {}).get("readinessGates") or []]


def gates_for(pod: Obj, load_balancers: Iterable[LoadBalancerSpec], services: Iterable[Obj]) -> list[str]:
    """The readiness gates a new pod gets: one per target group whose Service selects it."""
    namespace = pod["metadata"].get("namespace")
    labels = pod["metadata"].get("labels") or {}
    selectors = {
        s["metadata"]["name"]: (s.get("spec") or {}).get("selector") or {}
        for s in services
        if s["metadata"].get("namespace") == namespace
    }
    found: list[str] = []
    for lb in load_balancers:
        for group in lb.target_groups:
            selector = selectors.get(group.backend.service) if group.backend.namespace == namespace else None
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                found.append(group.readiness_gate)
    return sorted(set(found))


class ReadinessGateInjector:
    """The admission hook: adds a new pod's readiness gates (see the module's docstring)."""

    def __init__(self, store: Store, cluster_name: str) -> None:
        self.store = store
        self.cluster_name = cluster_name

    def __call__(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt is not PODS:
            return
        try:
            namespace = self.store.get(resources.NAMESPACE, None, obj["metadata"]["namespace"])
        except ApiError:
            return
        if (namespace["metadata"].get("labels") or {}).get(INJECT_LABEL) != "enabled":
            return
        services = list(self.store.iter_objects(SERVICES))
        desired = plan(
            self.cluster_name,
            self.store.iter_objects(INGRESSES),
            services,
            [],
            [],
            self.store.iter_objects(CLASSES),
        )
        spec = obj.setdefault("spec", {})
        present = set(_gates(obj))
        missing = [g for g in gates_for(obj, desired.load_balancers, services) if g not in present]
        if missing:
            spec["readinessGates"] = [
                *(spec.get("readinessGates") or []),
                *({"conditionType": g} for g in missing),
            ]


def _condition(health: Mapping[str, str]) -> tuple[str, str, str]:
    if health.get("state") == "healthy":
        return "True", "", ""
    return "False", health.get("reason", ""), health.get("description", "")


def gate_conditions(desired: Plan, pods: Iterable[Obj], health: TargetHealth) -> list[GateCondition]:
    """The conditions the gated pods' gates should have, from the plan's targets and their health."""
    groups = {g.readiness_gate: g for lb in desired.load_balancers for g in lb.target_groups}
    out: list[GateCondition] = []
    for pod in pods:
        meta = pod["metadata"]
        ip = (pod.get("status") or {}).get("podIP")
        if meta.get("deletionTimestamp"):
            continue
        for gate in _gates(pod):
            if not gate.startswith(READINESS_GATE_PREFIX):
                continue
            group = groups.get(gate)
            if group is None:
                if not desired.refused:  # a refused stack's groups are unknown, not gone
                    out.append(
                        GateCondition(meta["namespace"], meta["name"], gate, "True", "", BINDING_DELETED)
                    )
                continue
            if group.backend.namespace != meta["namespace"]:
                continue
            for target_ip, port in sorted(group.targets):
                if target_ip == ip:
                    found = (health.get(group.name) or {}).get(f"{target_ip}:{port}", REGISTERING)
                    out.append(GateCondition(meta["namespace"], meta["name"], gate, *_condition(found)))
    return out


def health_by_group(targets: Mapping[str, Any]) -> dict[str, dict[str, Mapping[str, str]]]:
    """The data plane's `/targets` answer as `TargetHealth`."""
    return {
        name: {str(entry["target"]): entry for entry in entries}
        for name, entries in (targets.get("target_groups") or {}).items()
    }
