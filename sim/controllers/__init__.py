"""The local cloud's controllers: level-triggered loops in the API server's event loop, reading and
writing the store directly (as kube-controller-manager does through the API).

Each controller is a `Controller` (base.py): it names the resource types it watches, and `reconcile()`
makes one full pass over the current state; the base runs that pass after every relevant change and,
for controllers that measure something, on a period. `manager.all_controllers` is the set a cluster
runs.
"""

from __future__ import annotations

from sim.controllers.base import Controller

__all__ = ["Controller"]
