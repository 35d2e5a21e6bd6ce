"""The local cloud's controllers: level-triggered loops in the API server's event loop, reading and
writing the store directly (as kube-controller-manager does through the API).

Each controller is a `Controller` (base.py): it names the resource types it watches, and `reconcile()`
makes one full pass over the current state (`run_pass()` when the pass must be awaited); the base runs that
pass after every relevant change and, for controllers that measure something, on a period.
`manager.all_controllers` is the set a cluster runs: the scheduler, the workload controllers
(Deployment, ReplicaSet, StatefulSet), disruption budgets, node lifecycle, the HPA and the Endpoints and
EndpointSlice controller (endpoints.py). They depend on the API (`sim.k8s`) only: the node's data plane
(`sim.network`) and the cloud controllers (`sim.alb`) build on them, never the other way.
"""

from __future__ import annotations

from sim.controllers.base import Controller

__all__ = ["Controller"]
