"""The local cloud's controllers: level-triggered loops in the API server's event loop, reading and
writing the store directly (as kube-controller-manager does through the API).

Each controller is a `Controller` (base.py): it names the resource types it watches, and `reconcile()`
makes one full pass over the current state; the base runs that pass after every relevant change and,
for controllers that measure something, on a period. `all_controllers` is the set a cluster runs.
"""

from __future__ import annotations

from sim.controllers.base import Controller
from sim.controllers.deployment import DeploymentController
from sim.controllers.replicaset import ReplicaSetController
from sim.controllers.scheduler import Scheduler
from sim.controllers.statefulset import StatefulSetController
from sim.k8s.store import Store


def all_controllers(store: Store) -> list[Controller]:
    """Every controller of the local cluster, in start order."""
    return [
        Scheduler(store),
        DeploymentController(store),
        ReplicaSetController(store),
        StatefulSetController(store),
    ]


__all__ = ["Controller", "all_controllers"]
