"""The controller manager: every controller of the local cluster, as kube-controller-manager (and the
scheduler) run them, and the timings of those that keep time.

Two of kube-controller-manager's controllers are not loops here: the garbage collector and the namespace
controller run within the store's writes (`sim.k8s.garbagecollector`, `sim.k8s.namespaces`, the store's
cascades), so that a cascading delete is whole when it returns, as clients that delete and then look
(`kubectl delete deploy`, then `kubectl get rs`) find it a moment later upstream."""

from __future__ import annotations

from dataclasses import dataclass

from sim.controllers.base import Controller
from sim.controllers.deployment import DeploymentController
from sim.controllers.disruption import DisruptionController
from sim.controllers.endpoints import EndpointsController
from sim.controllers.hpa import SYNC_SECONDS, HorizontalPodAutoscalerController, MetricsSource
from sim.controllers.nodelifecycle import EVICTION_SECONDS, GRACE_SECONDS, NodeLifecycleController
from sim.controllers.replicaset import ReplicaSetController
from sim.controllers.scheduler import Scheduler
from sim.controllers.statefulset import StatefulSetController
from sim.k8s.store import Store


@dataclass(frozen=True)
class Timings:
    """The periods and timeouts of the controllers that keep time; upstream's defaults."""

    hpa_sync_seconds: float = SYNC_SECONDS  # horizontal-pod-autoscaler-sync-period
    node_grace_seconds: float = GRACE_SECONDS  # node-monitor-grace-period
    pod_eviction_seconds: float = EVICTION_SECONDS  # default toleration of an unreachable node


def all_controllers(
    store: Store, metrics: MetricsSource | None = None, timings: Timings = Timings()
) -> list[Controller]:
    """Every controller of the local cluster, in start order; `metrics` gives the pods' usage (the node
    agent's measurements) to the HPA."""
    return [
        Scheduler(store),
        DeploymentController(store),
        ReplicaSetController(store),
        StatefulSetController(store),
        DisruptionController(store),
        NodeLifecycleController(store, timings.node_grace_seconds, timings.pod_eviction_seconds),
        HorizontalPodAutoscalerController(store, metrics, timings.hpa_sync_seconds),
        EndpointsController(store),
    ]
